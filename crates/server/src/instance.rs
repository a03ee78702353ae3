//! Bringing an instance up from its data directory: the master key, the CA, the database, the
//! server's own TLS certificate, and on first start the national organisation and the first RA
//! Manager's one-time bootstrap activation.
//!
//! When no RA Manager holds an active card but one holds a locked card (too many wrong
//! passcodes or PINs), nobody could issue the unlock code through the RA API; the server then
//! still starts, and each start issues a fresh unlock code for that card ([`RecoveryUnlock`]),
//! which the operator's start-up output shows and the RA Manager redeems on their own phone
//! (`vsc authenticator unlock`; redeeming needs that phone's device key).
//!
//! Layout of the data directory (mode 0700):
//!
//! ```text
//! master.key              256-bit key sealing the CA and TLS private keys (0600)
//! ca/root.pem, issuing.pem          CA certificates
//! ca/root.key.sealed, issuing.key.sealed   CA private keys, AES-256-GCM under master.key (0600)
//! tls/server.pem          server certificate + issuing CA + root
//! tls/server.key.sealed   its private key, sealed like the CA keys (0600)
//! vsc.db (+ -wal, -shm)   the SQLite database, WAL mode (absent when `--database` names PostgreSQL)
//! bootstrap.json          the first RA Manager's activation until it is redeemed (0600)
//! vapid-key.pem           the Web Push (VAPID) signing key, PKCS#8 PEM, made when absent (0600;
//!                         `vsc serve --vapid-key` puts it elsewhere)
//! ```

use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};
use vsc_core::{CardState, KeyCustody, RaRole, Uid};
use vsc_pki::{CertificateAuthority, MasterKey, PkiError};
use vsc_proto::OneTimeCode;
use vsc_store::Store;
use vsc_store::repo::{self, CardRow, OrganisationRow, PersonRow, RaRoleRow};

use crate::clock::Clock;
use crate::codes::{self, CodeKind};
use crate::config::ServerConfig;
use crate::crl;
use crate::error::ApiError;
use crate::state::{AppState, AuditContext};

/// Why the instance could not start.
#[derive(Debug, thiserror::Error)]
pub enum InstanceError {
    /// File system trouble.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Where.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The data directory is readable by others.
    #[error(
        "{0} is readable by other users; run `chmod 700 {0}` (it holds the CA and the database)"
    )]
    InsecureDataDir(String),
    /// Key or certificate trouble.
    #[error(transparent)]
    Pki(#[from] PkiError),
    /// Database trouble.
    #[error(transparent)]
    Store(#[from] vsc_store::StoreError),
    /// A step of the bootstrap failed.
    #[error("bootstrap failed: {0}")]
    Bootstrap(String),
    /// TLS configuration failed.
    #[error("TLS configuration failed: {0}")]
    Tls(String),
    /// A setting is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl From<ApiError> for InstanceError {
    fn from(e: ApiError) -> InstanceError {
        InstanceError::Bootstrap(format!("{}: {}", e.code, e.message))
    }
}

/// The first RA Manager's activation, printed at start-up until it is redeemed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BootstrapActivation {
    /// The first RA Manager's UID.
    pub uid: String,
    /// The code, link and fingerprint.
    pub activation: OneTimeCode,
}

/// An unlock code for the locked card of an RA Manager, issued at start-up because no RA
/// Manager holds an active card that could issue it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecoveryUnlock {
    /// The RA Manager's UID.
    pub uid: String,
    /// The locked card.
    pub card_id: String,
    /// The unlock code, link and fingerprint.
    pub unlock: OneTimeCode,
}

/// A prepared instance, ready to serve.
#[derive(Debug)]
pub struct Instance {
    /// Shared state for the handlers.
    pub state: AppState,
    /// TLS configuration with the server's certificate chain.
    pub tls: Arc<rustls::ServerConfig>,
    /// Present while no RA Manager has enrolled.
    pub bootstrap: Option<BootstrapActivation>,
    /// Present when no RA Manager holds an active card and one holds a locked card.
    pub recovery: Option<RecoveryUnlock>,
    /// Whether this start created the instance.
    pub created: bool,
}

fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> InstanceError + use<'p> {
    move |source| InstanceError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Opens (creating on first start) the instance in `config.data_dir`.
pub async fn prepare(
    config: ServerConfig,
    bound: SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<Instance, InstanceError> {
    config.signin.validate().map_err(InstanceError::Config)?;
    config.signing.validate().map_err(InstanceError::Config)?;
    let data = config.data_dir.clone();
    ensure_private_dir(&data)?;
    let master_key = MasterKey::load_or_create(&config.master_key_path())?;
    let ca_dir = data.join("ca");
    let created = !ca_dir.join("root.pem").exists();
    let ca = if created {
        let ca = CertificateAuthority::create(&config.instance_name, clock.now())?;
        ca.save(&ca_dir, &master_key)?;
        ca
    } else {
        CertificateAuthority::load(&ca_dir, &master_key)?
    };
    let location = vsc_store::Location::for_instance(&data, config.database.as_deref())?;
    let store = Store::open_at(&location).await?;
    let public_url = match &config.public_url {
        Some(u) => u.clone(),
        None => default_public_url(bound),
    };
    let tls = server_tls(
        &ca,
        &master_key,
        &data.join("tls"),
        &config,
        &public_url,
        clock.now(),
    )?;

    let national_ods = {
        let mut conn = store
            .pool()
            .acquire()
            .await
            .map_err(vsc_store::StoreError::from)?;
        repo::national_organisation(&mut conn)
            .await?
            .map(|o| o.ods_code)
    };
    let (push, _) = crate::push::Push::load(&config, &public_url)
        .map_err(|e| InstanceError::Config(e.to_string()))?;
    let national_known = national_ods.is_some();
    let national_ods = national_ods.unwrap_or_else(|| config.national_ods.clone());
    let state = AppState::new(
        store,
        ca,
        master_key,
        config,
        public_url,
        national_ods,
        clock,
        push,
    );
    if !national_known {
        bootstrap_national(&state).await?;
    }
    let (bootstrap, recovery) = match recovery_unlock(&state).await? {
        Some(recovery) => (None, Some(recovery)),
        None => (bootstrap_activation(&state).await?, None),
    };
    let bootstrap_file = data.join("bootstrap.json");
    match &bootstrap {
        Some(b) => write_private(
            &bootstrap_file,
            &serde_json::to_vec_pretty(b).map_err(|e| InstanceError::Bootstrap(e.to_string()))?,
        )?,
        None => {
            let _ = fs::remove_file(&bootstrap_file);
        }
    }
    crl::refresh_due(&state).await?;
    crate::routes::ra_versions::seed_policy(&state).await?;
    Ok(Instance {
        state,
        tls,
        bootstrap,
        recovery,
        created,
    })
}

fn default_public_url(bound: SocketAddr) -> url::Url {
    let host = if bound.ip().is_unspecified() {
        "localhost".to_owned()
    } else {
        match bound {
            SocketAddr::V4(a) => a.ip().to_string(),
            SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    url::Url::parse(&format!("https://{host}:{}/", bound.port())).unwrap_or_else(|_| {
        // Built from a socket address; cannot fail, but never panic at start-up either.
        url::Url::parse("https://localhost/").expect("a constant URL parses")
    })
}

fn ensure_private_dir(dir: &Path) -> Result<(), InstanceError> {
    if !dir.exists() {
        fs::create_dir_all(dir).map_err(io_err("cannot create data directory", dir))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(io_err("cannot set mode of", dir))?;
    }
    let mode = fs::metadata(dir)
        .map_err(io_err("cannot read", dir))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        return Err(InstanceError::InsecureDataDir(dir.display().to_string()));
    }
    Ok(())
}

/// Writes a file only its owner can read, atomically (temp file + rename).
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), InstanceError> {
    let tmp = path.with_extension("tmp");
    let _ = fs::remove_file(&tmp);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("cannot write", &tmp))?;
    f.write_all(bytes).map_err(io_err("cannot write", &tmp))?;
    f.sync_all().map_err(io_err("cannot write", &tmp))?;
    fs::rename(&tmp, path).map_err(io_err("cannot write", path))
}

/// The server's TLS certificate: issued by the instance CA at first start, and again whenever
/// the names change or it has less than 30 days left.
fn server_tls(
    ca: &CertificateAuthority,
    master_key: &MasterKey,
    dir: &Path,
    config: &ServerConfig,
    public_url: &url::Url,
    now: time::OffsetDateTime,
) -> Result<Arc<rustls::ServerConfig>, InstanceError> {
    ensure_private_dir(dir)?;
    let mut names: Vec<String> = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
    if let Some(host) = public_url.host_str() {
        names.push(
            host.trim_start_matches('[')
                .trim_end_matches(']')
                .to_owned(),
        );
    }
    names.extend(config.hostnames.iter().cloned());
    names.sort();
    names.dedup();
    let cert_path = dir.join("server.pem");
    let key_path = dir.join("server.key.sealed");
    let names_path = dir.join("names.txt");
    const AAD: &[u8] = b"vsc/tls/server-key";
    let stored_names = fs::read_to_string(&names_path).unwrap_or_default();
    let reuse = cert_path.exists() && key_path.exists() && stored_names == names.join("\n") && {
        let pem = fs::read_to_string(&cert_path).unwrap_or_default();
        vsc_pki::pem_to_der(&pem)
            .ok()
            .and_then(|der| vsc_pki::certificate_info(&der).ok())
            .is_some_and(|info| info.not_after - now > time::Duration::days(30))
    };
    if !reuse {
        let (cert, key) = ca.issue_server_certificate(&names, now)?;
        let chain = format!("{}{}{}", cert.pem(), ca.issuing_pem(), ca.root_pem());
        write_private(&key_path, &master_key.seal(AAD, &key)?)?;
        fs::write(&cert_path, chain).map_err(io_err("cannot write", &cert_path))?;
        fs::write(&names_path, names.join("\n")).map_err(io_err("cannot write", &names_path))?;
    }
    let chain_pem = fs::read_to_string(&cert_path).map_err(io_err("cannot read", &cert_path))?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| InstanceError::Tls(format!("cannot read the PEM in tls/server.pem: {e}")))?;
    let sealed = fs::read(&key_path).map_err(io_err("cannot read", &key_path))?;
    let key = master_key.open(AAD, &sealed)?;
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.to_vec()));
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InstanceError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| InstanceError::Tls(e.to_string()))?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

async fn bootstrap_national(state: &AppState) -> Result<(), InstanceError> {
    let cfg = state.config();
    let ods: vsc_core::OdsCode = cfg
        .national_ods
        .parse()
        .map_err(|e: vsc_core::IdError| InstanceError::Bootstrap(e.to_string()))?;
    let ctx = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let now = state.now_unix();
    let mut tx = state.write().await?;
    // Nodes started together on an empty shared database: the first to take the write lock
    // creates the national organisation, the others find it here and create nothing.
    if repo::national_organisation(&mut tx).await?.is_some() {
        return Ok(());
    }
    let org = OrganisationRow {
        ods_code: ods.to_string(),
        name: cfg.national_name.clone(),
        national: true,
    };
    repo::insert_organisation(&mut tx, &org, now).await?;
    state
        .append_audit(
            &mut tx,
            &ctx.event(
                "organisation.created",
                ods.as_str(),
                ods.as_str(),
                serde_json::json!({"name": org.name, "national": true}),
            ),
            state.now_ms(),
        )
        .await?;
    let uid = loop {
        let uid = Uid::from_random(state.random::<12>()?);
        let person = PersonRow {
            uid: uid.to_string(),
            given_name: cfg.bootstrap_given_name.clone(),
            family_name: cfg.bootstrap_family_name.clone(),
            email: None,
            registered_by: ods.to_string(),
        };
        if repo::insert_person(&mut tx, &person, now).await? {
            break uid;
        }
    };
    let role = RaRoleRow {
        uid: uid.to_string(),
        ods_code: ods.to_string(),
        role: RaRole::RaManager.as_str().into(),
        assignable_roles: vec![],
        assignable_activities: vec![],
    };
    repo::upsert_ra_role(&mut tx, &role, now).await?;
    let card = CardRow {
        id: state.new_id()?,
        uid: uid.to_string(),
        state: CardState::Pending,
        custody: KeyCustody::DeviceHeld.as_str().into(),
        issued_by: ods.to_string(),
        device_id: None,
    };
    repo::insert_card(&mut tx, &card, now).await?;
    state.append_audit(
        &mut tx,
        &ctx.event(
            "instance.bootstrapped",
            uid.as_str(),
            ods.as_str(),
            serde_json::json!({"ra_role": "ra-manager", "card_id": card.id, "ca_fingerprint": state.ca().root_fingerprint().to_colon_hex()}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// While no RA Manager holds an active card but one holds a locked card, every start issues a
/// fresh unlock code for that card (national RA Managers first, then the oldest card): without
/// it the instance could not be administered, and without this the server refused to start.
async fn recovery_unlock(state: &AppState) -> Result<Option<RecoveryUnlock>, InstanceError> {
    let mut tx = state.write().await?;
    let active_manager: Option<(String,)> = sqlx::query_as(
        "SELECT c.id FROM cards c JOIN ra_roles r ON r.uid = c.uid
         WHERE r.role = 'ra-manager' AND c.state = 'active' LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(vsc_store::StoreError::from)?;
    if active_manager.is_some() {
        return Ok(None);
    }
    let locked: Option<(String, String)> = sqlx::query_as(
        "SELECT c.id, c.uid FROM cards c JOIN ra_roles r ON r.uid = c.uid JOIN organisations o ON o.ods_code = r.ods_code
         WHERE r.role = 'ra-manager' AND c.state = 'locked' ORDER BY o.national DESC, c.created_at LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(vsc_store::StoreError::from)?;
    let Some((card_id, uid)) = locked else {
        return Ok(None);
    };
    let ttl = state.config().unlock_ttl;
    let issued = codes::issue(state, &mut tx, CodeKind::Unlock, &card_id, "system", ttl).await?;
    let ctx = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    state.append_audit(
        &mut tx,
        &ctx.event(
            "card.unlock.recovery",
            &card_id,
            state.national_ods(),
            serde_json::json!({"uid": uid, "code_id": issued.code.id(), "recovery": true, "expires_at": issued.expires_at.unix_timestamp()}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    tracing::warn!(
        uid,
        card_id,
        "no RA Manager holds an active card; issued a recovery unlock code for a locked one"
    );
    Ok(Some(RecoveryUnlock {
        uid,
        card_id,
        unlock: issued.to_proto(state, CodeKind::Unlock),
    }))
}

/// While no RA Manager holds an active card, every start issues a fresh bootstrap activation
/// (voiding the previous one): the operator always has a live code, and an old printout or log
/// line stops working.
async fn bootstrap_activation(
    state: &AppState,
) -> Result<Option<BootstrapActivation>, InstanceError> {
    let mut tx = state.write().await?;
    let active_manager: Option<(String,)> = sqlx::query_as(
        "SELECT c.id FROM cards c JOIN ra_roles r ON r.uid = c.uid
         WHERE r.role = 'ra-manager' AND c.state = 'active' LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(vsc_store::StoreError::from)?;
    if active_manager.is_some() {
        return Ok(None);
    }
    let pending: Option<(String, String)> = sqlx::query_as(
        "SELECT c.id, c.uid FROM cards c JOIN ra_roles r ON r.uid = c.uid JOIN organisations o ON o.ods_code = r.ods_code
         WHERE r.role = 'ra-manager' AND o.national = 1 AND c.state = 'pending' ORDER BY c.created_at LIMIT 1",
    )
    .fetch_optional(&mut *tx)
    .await
    .map_err(vsc_store::StoreError::from)?;
    let Some((card_id, uid)) = pending else {
        return Err(InstanceError::Bootstrap(
            "no RA Manager has an active card and none is pending; the instance cannot be administered".into(),
        ));
    };
    let ttl = state.config().activation_ttl;
    let issued = codes::issue(
        state,
        &mut tx,
        CodeKind::Activation,
        &card_id,
        "system",
        ttl,
    )
    .await?;
    let ctx = AuditContext {
        actor: "system".into(),
        source: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    state.append_audit(
        &mut tx,
        &ctx.event(
            "activation.issued",
            &card_id,
            state.national_ods(),
            serde_json::json!({"uid": uid, "code_id": issued.code.id(), "bootstrap": true, "expires_at": issued.expires_at.unix_timestamp()}),
        ),
        state.now_ms(),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(BootstrapActivation {
        uid,
        activation: issued.to_proto(state, CodeKind::Activation),
    }))
}
