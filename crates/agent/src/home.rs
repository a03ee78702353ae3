//! The agent's state directory (`--home`, `VSC_AGENT_HOME`, by default `$HOME/.vsc/agent`).
//!
//! * `agent.json` ([`AgentFile`]): the server's URL and how to trust it (root CA PEM or
//!   fingerprint), the last UID that signed in, the workstation's id (generated once) and name;
//! * `agent.secret`: the local API secret ([`crate::secret`]), mode 0600;
//! * `agent.port`: the address a running agent listens on (`127.0.0.1:PORT`), written when it
//!   starts and removed when it stops, so that `vsc agent ticket|status|lock|…` find it;
//! * `workstation.key` (0600) and `workstation.json`: the workstation's registration, written
//!   by `vsc agent enrol` ([`crate::workstation`]).
//!
//! The directory is created 0700; files are written 0600 through a temporary file and a rename.
//! No ticket is ever written here: the session lives only in the running agent's memory.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use url::Url;

use crate::agent::{AgentConfig, Workstation};
use crate::secret::LocalSecret;
use crate::server::ServerTrust;
use crate::{AgentError, Result};
use vsc_https::fsutil;

const CONFIG_FILE: &str = "agent.json";
const SECRET_FILE: &str = "agent.secret";
const PORT_FILE: &str = "agent.port";

/// What `agent.json` holds. Every field is optional so that a partly configured home loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AgentFile {
    /// The vsc server's base URL.
    pub server: Option<Url>,
    /// The instance root CA (PEM), when given with `--ca-file`.
    pub root_ca_pem: Option<String>,
    /// The root CA's SHA-256 fingerprint, when given with `--ca-fingerprint`.
    pub ca_fingerprint: Option<String>,
    /// The UID that signed in last (the default for the next sign-in).
    pub last_uid: Option<String>,
    /// This workstation's stable id (16 random bytes, hex), generated once.
    pub workstation_id: Option<String>,
    /// The name shown on the phone; the host name when unset.
    pub workstation_name: Option<String>,
}

impl AgentFile {
    /// How to trust the server: the root PEM if known, else the fingerprint.
    pub fn trust(&self) -> Option<ServerTrust> {
        self.root_ca_pem
            .clone()
            .map(ServerTrust::RootPem)
            .or_else(|| self.ca_fingerprint.clone().map(ServerTrust::Fingerprint))
    }
}

/// The agent's state directory.
#[derive(Debug, Clone)]
pub struct AgentHome {
    dir: PathBuf,
}

impl AgentHome {
    /// `$HOME/.vsc/agent` (or `./.vsc/agent` without `HOME`).
    pub fn default_dir() -> PathBuf {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".vsc")
            .join("agent")
    }

    /// Opens `dir`, creating it (mode 0700) if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<AgentHome> {
        let dir = dir.into();
        fsutil::create_private_dir(&dir).map_err(|source| AgentError::Io {
            action: "create the directory",
            path: dir.clone(),
            source,
        })?;
        Ok(AgentHome { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `agent.json`.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// `agent.secret`.
    pub fn secret_path(&self) -> PathBuf {
        self.dir.join(SECRET_FILE)
    }

    /// `agent.port`.
    pub fn port_path(&self) -> PathBuf {
        self.dir.join(PORT_FILE)
    }

    /// Reads `agent.json` (empty when it does not exist yet).
    pub fn load(&self) -> Result<AgentFile> {
        let path = self.config_path();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| AgentError::Corrupt {
                path,
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AgentFile::default()),
            Err(source) => Err(AgentError::Io {
                action: "read",
                path,
                source,
            }),
        }
    }

    /// Reads `agent.json`, giving the workstation an id if it has none yet (and saving it).
    pub fn load_or_init(&self) -> Result<AgentFile> {
        let mut file = self.load()?;
        if file.workstation_id.is_none() {
            let mut id = [0u8; 16];
            aws_lc_rs::rand::fill(&mut id)
                .map_err(|_| AgentError::Internal("the random number generator failed".into()))?;
            file.workstation_id = Some(hex::encode(id));
            self.save(&file)?;
        }
        Ok(file)
    }

    /// Writes `agent.json`.
    pub fn save(&self, file: &AgentFile) -> Result<()> {
        let path = self.config_path();
        let mut bytes = serde_json::to_vec_pretty(file)
            .map_err(|e| AgentError::Internal(format!("cannot encode agent.json: {e}")))?;
        bytes.push(b'\n');
        fsutil::write_private_atomic(&path, &bytes).map_err(|source| AgentError::Io {
            action: "write",
            path,
            source,
        })
    }

    /// Reads and changes `agent.json` in one step.
    pub fn update(&self, change: impl FnOnce(&mut AgentFile)) -> Result<AgentFile> {
        let mut file = self.load_or_init()?;
        change(&mut file);
        self.save(&file)?;
        Ok(file)
    }

    /// The local API secret, made on first use.
    pub fn secret(&self) -> Result<LocalSecret> {
        LocalSecret::load_or_create(&self.secret_path())
    }

    /// The agent configuration `agent.json` describes.
    pub fn agent_config(&self, file: &AgentFile) -> Result<AgentConfig> {
        let server = file.server.clone().ok_or(AgentError::NotConfigured)?;
        let trust = file.trust().ok_or(AgentError::NoTrust)?;
        let workstation_id = file
            .workstation_id
            .clone()
            .ok_or_else(|| AgentError::Internal("the workstation has no id yet".into()))?;
        let name = file
            .workstation_name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(host_name);
        let mut config = AgentConfig::new(server, trust, Workstation::new(workstation_id, name));
        config.default_uid = file.last_uid.clone();
        // A registration for another server is not this server's business.
        config.registration = crate::workstation::load(self)?
            .filter(|ws| ws.registration.server == config.server)
            .map(std::sync::Arc::new);
        Ok(config)
    }

    /// Records where the running agent listens.
    pub fn write_address(&self, addr: SocketAddr) -> Result<()> {
        let path = self.port_path();
        fsutil::write_private_atomic(&path, format!("{addr}\n").as_bytes()).map_err(|source| {
            AgentError::Io {
                action: "write",
                path,
                source,
            }
        })
    }

    /// Where a running agent listens, if one has said so. A bare port means 127.0.0.1.
    pub fn read_address(&self) -> Result<Option<SocketAddr>> {
        let path = self.port_path();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(AgentError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let text = text.trim();
        let addr = text
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| {
                text.parse::<u16>()
                    .ok()
                    .map(|port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
            })
            .ok_or_else(|| AgentError::Corrupt {
                path: path.clone(),
                reason: format!("'{text}' is not an address"),
            })?;
        if !addr.ip().is_loopback() {
            return Err(AgentError::Corrupt {
                path,
                reason: format!("{addr} is not a loopback address"),
            });
        }
        Ok(Some(addr))
    }

    /// Forgets the running agent's address (when it stops), if it is still `addr`.
    pub fn clear_address(&self, addr: SocketAddr) -> Result<()> {
        if self.read_address().ok().flatten() == Some(addr) {
            let path = self.port_path();
            fsutil::remove_if_exists(&path).map_err(|source| AgentError::Io {
                action: "remove",
                path,
                source,
            })?;
        }
        Ok(())
    }
}

/// This computer's host name, or `workstation` when it cannot be found.
pub fn host_name() -> String {
    let from_file = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    };
    std::env::var("HOSTNAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .or_else(|| from_file("/proc/sys/kernel/hostname"))
        .or_else(|| from_file("/etc/hostname"))
        .map(|s| s.chars().filter(|c| !c.is_control()).take(200).collect())
        .unwrap_or_else(|| "workstation".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_keeps_its_workstation_id() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = AgentHome::open(dir.path().join("agent")).expect("home");
        assert_eq!(home.load().expect("empty"), AgentFile::default());
        assert!(matches!(
            home.agent_config(&home.load_or_init().expect("init")),
            Err(AgentError::NotConfigured)
        ));
        let first = home.load_or_init().expect("init");
        let id = first.workstation_id.clone().expect("id");
        assert_eq!(id.len(), 32);
        let updated = home
            .update(|f| {
                f.server = Some(Url::parse("https://127.0.0.1:8443").expect("url"));
                f.ca_fingerprint = Some("ab".repeat(32));
                f.last_uid = Some("130524153718".into());
            })
            .expect("update");
        assert_eq!(updated.workstation_id.as_deref(), Some(id.as_str()));
        let config = home
            .agent_config(&home.load().expect("load"))
            .expect("config");
        assert_eq!(config.workstation.id, id);
        assert!(!config.workstation.name.is_empty());
        assert_eq!(config.default_uid.as_deref(), Some("130524153718"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.config_path())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
            let dir_mode = std::fs::metadata(home.dir())
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(dir_mode & 0o777, 0o700);
        }
    }

    #[test]
    fn port_file_holds_a_loopback_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let home = AgentHome::open(dir.path()).expect("home");
        assert_eq!(home.read_address().expect("none"), None);
        let addr: SocketAddr = "127.0.0.1:41234".parse().expect("addr");
        home.write_address(addr).expect("write");
        assert_eq!(home.read_address().expect("read"), Some(addr));
        std::fs::write(home.port_path(), "41235\n").expect("write");
        assert_eq!(
            home.read_address().expect("read"),
            Some("127.0.0.1:41235".parse().expect("addr"))
        );
        std::fs::write(home.port_path(), "192.0.2.7:80\n").expect("write");
        assert!(home.read_address().is_err());
        home.write_address(addr).expect("write");
        home.clear_address("127.0.0.1:1".parse().expect("addr"))
            .expect("other address: kept");
        assert_eq!(home.read_address().expect("read"), Some(addr));
        home.clear_address(addr).expect("cleared");
        assert_eq!(home.read_address().expect("read"), None);
    }
}
