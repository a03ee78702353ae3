//! The app's state directory (`--home DIR`): who this device is, what it is enrolled for, and
//! where its keystore lives.
//!
//! * `device.json`: a device id generated once (16 random bytes, hex), the platform
//!   (`vsc-cli`), the app version and whether the device is simulated;
//! * `enrolment.json`: written after a successful enrolment: the server's base URL, the root CA
//!   (the only trust anchor from then on), the CA chain, the person, the card and its two
//!   certificates;
//! * `keystore.json`: see [`crate::keystore`];
//! * `renewal-window.json`: the card's renewal window as the server last described it (see
//!   [`RenewalNews`]), for `status` when offline;
//! * `device-key.json`: the device channel key, see [`crate::device_key`] (not under the
//!   passcode: it authenticates the connection that receives requests and signs the passcode
//!   checks the server makes before it releases the keystore's server secret).
//!
//! The directory is created 0700 and every file is written 0600 through a temporary file and a
//! rename. One person per device: a home holds at most one enrolment.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use url::Url;
use vsc_proto::DeviceFacts;

use crate::device_key::DeviceKey;
use crate::fsutil;
use crate::keystore::{KeystoreError, SoftwareKeystore};

/// The platform this library reports.
pub const PLATFORM: &str = "vsc-cli";

const DEVICE_FILE: &str = "device.json";
const ENROLMENT_FILE: &str = "enrolment.json";
const KEYSTORE_FILE: &str = "keystore.json";
const PENDING_KEYSTORE_FILE: &str = "keystore.pending.json";
const RENEWING_KEYSTORE_FILE: &str = "keystore.renewing.json";
const RENEWAL_FILE: &str = "renewal.json";
const RENEWAL_WINDOW_FILE: &str = "renewal-window.json";
const DEVICE_KEY_FILE: &str = "device-key.json";

/// Why the home directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    /// A file or the directory could not be read or written.
    #[error("could not {action} {}: {source}; check the --home directory exists and that you may write to it", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file does not make sense.
    #[error("{} is damaged ({reason}); restore it from a backup, or move the directory away and enrol again", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// What this installation says about itself (`device.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    /// 16 random bytes, lowercase hex; generated once.
    pub device_id: String,
    /// Always [`PLATFORM`] here.
    pub platform: String,
    /// The app version that last wrote the file.
    pub app_version: String,
    /// A simulated phone (demo, sandbox, tests).
    pub simulated: bool,
}

impl Device {
    /// The facts sent to the server, with the running app's version.
    pub fn facts(&self) -> DeviceFacts {
        DeviceFacts {
            device_id: self.device_id.clone(),
            platform: self.platform.clone(),
            app_version: env!("CARGO_PKG_VERSION").to_owned(),
            model: format!("{} {}", std::env::consts::OS, std::env::consts::ARCH),
            simulated: self.simulated,
        }
    }
}

/// The card this device holds (`enrolment.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrolment {
    /// The server's base URL.
    pub server: Url,
    /// The instance root CA (PEM): the only trust anchor for the server from now on.
    pub root_ca_pem: String,
    /// Issuing CA then root CA (PEM), as the server sent it.
    pub ca_chain_pem: String,
    /// The person's UID.
    pub uid: String,
    /// Given name.
    pub given_name: String,
    /// Family name.
    pub family_name: String,
    /// The card.
    pub card_id: String,
    /// Authentication certificate (PEM).
    pub auth_certificate_pem: String,
    /// Signing certificate (PEM).
    pub signing_certificate_pem: String,
    /// When this device enrolled.
    #[serde(with = "time::serde::rfc3339")]
    pub enrolled_at: OffsetDateTime,
}

/// The state directory.
#[derive(Debug, Clone)]
pub struct Home {
    dir: PathBuf,
}

impl Home {
    /// Opens `dir`, creating it (mode 0700) if it does not exist.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Home, HomeError> {
        let dir = dir.into();
        fsutil::create_private_dir(&dir).map_err(|source| HomeError::Io {
            action: "create the directory",
            path: dir.clone(),
            source,
        })?;
        Ok(Home { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the keystore lives.
    pub fn keystore_path(&self) -> PathBuf {
        self.dir.join(KEYSTORE_FILE)
    }

    /// Where an enrolment in progress keeps its new keystore until the server has answered.
    pub(crate) fn pending_keystore_path(&self) -> PathBuf {
        self.dir.join(PENDING_KEYSTORE_FILE)
    }

    /// `device.json`.
    pub fn device_path(&self) -> PathBuf {
        self.dir.join(DEVICE_FILE)
    }

    /// `enrolment.json`.
    pub fn enrolment_path(&self) -> PathBuf {
        self.dir.join(ENROLMENT_FILE)
    }

    /// The device record, if one has been made.
    pub fn device(&self) -> Result<Option<Device>, HomeError> {
        read_json(&self.device_path())
    }

    /// The device record, made now if there is none (the id is generated once and then kept).
    /// The app version and the simulated flag are brought up to date.
    pub fn device_or_create(&self, simulated: bool) -> Result<Device, HomeError> {
        let current = self.device()?;
        let device = match &current {
            Some(d) => Device {
                app_version: env!("CARGO_PKG_VERSION").to_owned(),
                simulated,
                ..d.clone()
            },
            None => {
                let mut id = [0u8; 16];
                aws_lc_rs::rand::fill(&mut id).map_err(|_| HomeError::Io {
                    action: "generate a device id for",
                    path: self.device_path(),
                    source: std::io::Error::other("the random number generator failed"),
                })?;
                Device {
                    device_id: hex::encode(id),
                    platform: PLATFORM.to_owned(),
                    app_version: env!("CARGO_PKG_VERSION").to_owned(),
                    simulated,
                }
            }
        };
        if current.as_ref() != Some(&device) {
            write_json(&self.device_path(), &device)?;
        }
        Ok(device)
    }

    /// `device-key.json`.
    pub fn device_key_path(&self) -> PathBuf {
        self.dir.join(DEVICE_KEY_FILE)
    }

    /// The device channel key, if enrolment made one.
    pub fn device_key(&self) -> Result<Option<DeviceKey>, HomeError> {
        DeviceKey::load(&self.device_key_path())
    }

    /// Installs the device channel key (after a successful enrolment).
    pub(crate) fn save_device_key(&self, key: &DeviceKey) -> Result<(), HomeError> {
        key.save(&self.device_key_path())
    }

    /// The enrolment, if this device has one.
    pub fn enrolment(&self) -> Result<Option<Enrolment>, HomeError> {
        read_json(&self.enrolment_path())
    }

    /// Records an enrolment.
    pub fn save_enrolment(&self, enrolment: &Enrolment) -> Result<(), HomeError> {
        write_json(&self.enrolment_path(), enrolment)
    }

    /// Opens the keystore (nothing is decrypted).
    pub fn open_keystore(&self) -> Result<SoftwareKeystore, KeystoreError> {
        SoftwareKeystore::open(&self.keystore_path())
    }

    /// Where a renewal keeps the new keys until the server has confirmed them
    /// (`keystore.renewing.json`; see [`crate::flows::renew`]).
    pub fn renewing_keystore_path(&self) -> PathBuf {
        self.dir.join(RENEWING_KEYSTORE_FILE)
    }

    /// `renewal.json`: a renewal the server issued that this phone has not finished.
    pub fn renewal_path(&self) -> PathBuf {
        self.dir.join(RENEWAL_FILE)
    }

    /// The unfinished renewal, if any.
    pub fn renewal(&self) -> Result<Option<PendingRenewal>, HomeError> {
        read_json(&self.renewal_path())
    }

    /// Records an unfinished renewal.
    pub fn save_renewal(&self, renewal: &PendingRenewal) -> Result<(), HomeError> {
        write_json(&self.renewal_path(), renewal)
    }

    /// `renewal-window.json`: what the server last said about the card's renewal window.
    pub fn renewal_news_path(&self) -> PathBuf {
        self.dir.join(RENEWAL_WINDOW_FILE)
    }

    /// What the server last said about the card's renewal window, if it ever did.
    pub fn renewal_news(&self) -> Result<Option<RenewalNews>, HomeError> {
        read_json(&self.renewal_news_path())
    }

    /// Records what the server said about the card's renewal window.
    pub fn save_renewal_news(&self, news: &RenewalNews) -> Result<(), HomeError> {
        write_json(&self.renewal_news_path(), news)
    }
}

/// The card's renewal window as the server last described it (`renewal-window.json`). The
/// server tells the phone in a renewal challenge (always) and beside each sign-in request (only
/// when renewal is due: a request without it means "not due" as of then). `status` uses it
/// instead of the default window, which it falls back to only when the phone never heard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalNews {
    /// The window as last described; `None` when the server only ever said "not due" (then the
    /// instance's window length is not known).
    pub window: Option<vsc_proto::renewal::RenewalWindow>,
    /// What the server said last: renewal due (inside the window, or an RA forced it).
    pub due: bool,
    /// An RA made the renewal due now (`vsc ra card renew-now`), as the server said last.
    pub forced: bool,
    /// When the server said it.
    #[serde(with = "time::serde::rfc3339")]
    pub heard_at: OffsetDateTime,
}

/// A renewal the server issued and this phone has not finished (`renewal.json`): what it needs
/// to confirm and then install the new certificates. No secrets: the confirmation needs the
/// new private key, which is in the keystore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRenewal {
    /// The renewal.
    pub renewal_id: String,
    /// What the confirmation signs.
    pub confirm_nonce: String,
    /// The new authentication key (SPKI, base64), to tell which keystore holds it.
    pub new_auth_spki: String,
    /// New authentication certificate (PEM).
    pub auth_certificate_pem: String,
    /// New signing certificate (PEM).
    pub signing_certificate_pem: String,
    /// Confirm before this.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

fn read_json<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, HomeError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(HomeError::Io {
                action: "read",
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| HomeError::Corrupt {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), HomeError> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| HomeError::Corrupt {
        path: path.to_owned(),
        reason: format!("could not be serialised: {e}"),
    })?;
    fsutil::write_private_atomic(path, &json).map_err(|source| HomeError::Io {
        action: "write",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_id_is_made_once_and_files_are_private() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = Home::open(dir.path().join("nested/home")).expect("open");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.dir())
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert_eq!(home.device().expect("read"), None);
        let first = home.device_or_create(false).expect("create");
        assert_eq!(first.device_id.len(), 32);
        assert_eq!(first.platform, PLATFORM);
        let again = home.device_or_create(true).expect("again");
        assert_eq!(again.device_id, first.device_id);
        assert!(again.simulated);
        assert_eq!(home.device().expect("read"), Some(again.clone()));
        let facts = again.facts();
        assert_eq!(facts.platform, "vsc-cli");
        assert_eq!(facts.app_version, env!("CARGO_PKG_VERSION"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(home.device_path())
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600);
        }
        // Another home gets another id.
        let other = Home::open(dir.path().join("other")).expect("open");
        assert_ne!(
            other.device_or_create(false).expect("create").device_id,
            first.device_id
        );
        assert_eq!(home.enrolment().expect("read"), None);
    }
}
