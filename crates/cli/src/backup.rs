//! `vsc backup` and `vsc restore`: one archive file holding an instance, taken while the server
//! runs, and brought back into a new data directory.
//!
//! The archive is a gzip-compressed tar:
//!
//! ```text
//! data/vsc.db            consistent snapshot of the SQLite database (VACUUM INTO)
//! data/ca/…, data/tls/…  certificates and sealed keys, as in the data directory
//! data/bootstrap.json    when present, and any other file of the data directory
//! data/master.key        only with --include-master-key
//! manifest.json          format, vsc version, time, every file's size and SHA-256, the
//!                        audit chain's event count and head hash in the snapshot
//! ```
//!
//! The master key is left out by default: the sealed CA and TLS keys are useless without it,
//! so an archive that leaks reveals no key, and the operator keeps the key apart.
//!
//! Restoring treats the archive as hostile input. Nothing is written until every member has
//! been read once and matched to the manifest (size and SHA-256), only regular files with plain
//! relative names are accepted (no `..`, no absolute paths, no links), and the files are then
//! written into a private staging directory next to the target, checked again (hashes, the
//! audit chain against the manifest's head, the master key against the CA's sealed key) and
//! renamed into place in one step: a refused restore leaves the target as it was.
//!
//! The manifest detects damage and truncation, not a forger: whoever can rewrite the archive
//! can rewrite its manifest. Keep backups where only operators can write.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, bail};
use aws_lc_rs::digest;
use clap::Args;
use serde::{Deserialize, Serialize};
use vsc_pki::{CertificateAuthority, MasterKey, PkiError};
use vsc_store::{Backend, Location, Store};
use zeroize::Zeroizing;

/// The manifest's `format`.
const FORMAT: &str = "vsc-backup/1";
/// The manifest's member name.
const MANIFEST: &str = "manifest.json";
/// Prefix of the data directory's members.
const DATA_PREFIX: &str = "data/";
/// The database file inside the data directory (and the archive).
const DATABASE_FILE: &str = "vsc.db";
/// The master key file inside the data directory (and the archive).
const MASTER_KEY_FILE: &str = "master.key";
/// A manifest is a few kilobytes; more is not ours.
const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// `vsc backup`.
#[derive(Debug, Args)]
#[command(
    long_about = "Write an instance to one archive file (tar + gzip, mode 0600) while the server \
keeps running: a consistent snapshot of the SQLite database (SQLite's VACUUM INTO: every \
committed transaction up to one moment, none after), the CA certificates and sealed keys, the \
TLS certificate and sealed key, bootstrap.json and any other file of the data directory, and a \
manifest (vsc version, time, each file's SHA-256, the audit chain's event count and head hash).\n\n\
The master key is NOT in the archive unless --include-master-key is given: the sealed keys in the \
archive are useless without it, so keep a copy of master.key separately (offline, in the trust's \
key safe), and give it to `vsc restore --master-key`.\n\n\
On PostgreSQL (--database postgres://…) the database is not in the archive: back it up with \
`pg_dump -Fc`; this command then writes the data directory's keys and certificates, and records \
the audit chain's head so the restored database can be checked against it.",
    after_help = "Examples:\n  vsc backup --data /var/lib/vsc -o /backup/vsc-$(date +%F).tar.gz\n  vsc backup --data /var/lib/vsc -o /backup/vsc.tar.gz --master-key /etc/vsc/master.key --include-master-key\n  pg_dump -Fc -f /backup/vsc-db.dump postgres://vsc@db/vsc && vsc backup --data /var/lib/vsc --database postgres://vsc@db/vsc -o /backup/vsc-keys.tar.gz\n  vsc restore /backup/vsc.tar.gz --data /var/lib/vsc-restored --master-key /safe/master.key"
)]
pub struct BackupArgs {
    /// The instance's data directory.
    #[arg(long, default_value = "./vsc-data", env = "VSC_DATA")]
    data: PathBuf,
    /// The instance's database when it is not DATA/vsc.db (as `vsc serve --database`). A
    /// PostgreSQL database is not copied (use pg_dump); its audit head is recorded.
    #[arg(
        long,
        env = "VSC_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database: Option<String>,
    /// The archive to write (must not exist yet; created with mode 0600).
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// Put the master key in the archive too (then the archive alone restores the instance:
    /// guard it like the key itself).
    #[arg(long)]
    include_master_key: bool,
    /// Where the master key is (default: DATA/master.key), as `vsc serve --master-key`.
    #[arg(long, env = "VSC_MASTER_KEY", value_name = "FILE")]
    master_key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// `vsc restore`.
#[derive(Debug, Args)]
#[command(
    long_about = "Bring an instance back from a `vsc backup` archive into a new (or empty) data \
directory. Every file is checked against the manifest's SHA-256 before anything is written; \
members with paths that would leave the directory, absolute paths and links are refused. The \
files are written into a staging directory beside the target (directories 0700, files 0600), \
the restored database's audit chain is verified and must end in the manifest's head hash, the \
master key must unseal the CA's keys, and only then does the staging directory become the data \
directory. A refused restore leaves the target as it was.\n\n\
When the archive has no master key, give the instance's key with --master-key (it is copied \
into DATA/master.key, mode 0600, after it is checked); without it, put the key back yourself \
before starting the server.\n\n\
An archive of a PostgreSQL instance holds no database: restore it with `pg_restore` into an \
empty database, then check it with `vsc audit verify --database URL` (the head hash must be the \
one this command prints).",
    after_help = "Examples:\n  vsc restore /backup/vsc-2025-01-31.tar.gz --data /var/lib/vsc --master-key /safe/master.key\n  vsc restore /backup/vsc.tar.gz --data /var/lib/vsc --json\n  createdb vsc && pg_restore -d postgres://vsc@db/vsc /backup/vsc-db.dump && vsc restore /backup/vsc-keys.tar.gz --data /var/lib/vsc --master-key /safe/master.key"
)]
pub struct RestoreArgs {
    /// The archive written by `vsc backup`.
    archive: PathBuf,
    /// The data directory to restore into: must not exist, or be empty.
    #[arg(long)]
    data: PathBuf,
    /// The instance's master key, when the archive does not hold it: checked against the CA's
    /// sealed keys, then copied into DATA/master.key (0600).
    #[arg(long, value_name = "FILE")]
    master_key: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What the archive holds and how to check it (`manifest.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Manifest {
    format: String,
    vsc_version: String,
    created_at: String,
    source_data_dir: String,
    database: DatabaseInfo,
    audit: AuditHead,
    master_key_included: bool,
    files: Vec<FileEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct DatabaseInfo {
    /// `sqlite` or `postgresql`.
    engine: String,
    /// Whether `vsc.db` is in the archive (never for PostgreSQL).
    included: bool,
    /// Where it was (a PostgreSQL URL without its password).
    location: String,
}

/// The audit event a backup leaves in the live instance (what `vsc assurance report` reads as
/// the last backup).
pub const BACKUP_EVENT: &str = "backup.taken";

/// Records in the live instance's audit log that a backup was taken, after the archive is
/// safely written: the archive holds the chain up to the event before this one, which the
/// event names, so the log says which backup covers what.
async fn record_backup(
    location: &Location,
    archive: &Path,
    bytes: u64,
    database: &DatabaseInfo,
    audit: &AuditHead,
) -> Result<()> {
    let store = Store::open_existing_at(location)
        .await
        .with_context(|| format!("cannot open {} to record the backup", location.redacted()))?;
    let recorded = async {
        let mut tx = store.write().await?;
        vsc_store::audit::append_in(
            &mut tx,
            &vsc_store::NewEvent {
                actor: "system".into(),
                action: BACKUP_EVENT.into(),
                subject: archive
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                organisation: String::new(),
                source: "vsc backup".into(),
                outcome: vsc_store::Outcome::Success,
                detail: serde_json::json!({
                    "bytes": bytes,
                    "database_included": database.included,
                    "audit_events": audit.events,
                    "audit_head_hash": audit.head_hash,
                }),
            },
            time::OffsetDateTime::now_utc().unix_timestamp() * 1000,
        )
        .await?;
        tx.commit().await
    }
    .await;
    store.close().await;
    recorded.context("the backup was written, but recording it in the audit log failed")
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct AuditHead {
    events: u64,
    head_hash: String,
    intact: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileEntry {
    /// Relative to the data directory, `/`-separated.
    path: String,
    size: u64,
    sha256: String,
}

/// Runs `vsc backup`.
pub async fn backup(args: BackupArgs) -> Result<ExitCode> {
    let data = &args.data;
    if !data.is_dir() {
        bail!("{} is not a data directory", data.display());
    }
    if args.output.exists() {
        bail!(
            "{} already exists: a backup never overwrites a file",
            args.output.display()
        );
    }
    let out_dir = match args.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let data_canon = fs::canonicalize(data)
        .with_context(|| format!("cannot read the data directory {}", data.display()))?;
    let out_canon = fs::canonicalize(&out_dir)
        .with_context(|| format!("cannot write into {}", out_dir.display()))?;
    if out_canon.starts_with(&data_canon) {
        bail!(
            "write the backup outside the data directory (it would end up inside the next backup)"
        );
    }
    let master_key_path = args
        .master_key
        .clone()
        .unwrap_or_else(|| data.join(MASTER_KEY_FILE));
    let location = Location::for_instance(data, args.database.as_deref())?;

    // The snapshot lives beside the archive (same file system, private directory) until it is
    // in the archive.
    let scratch = tempfile::Builder::new()
        .prefix(".vsc-backup-")
        .tempdir_in(&out_dir)
        .with_context(|| format!("cannot write into {}", out_dir.display()))?;
    let (database, audit, snapshot) = match location.backend() {
        Backend::Sqlite => {
            if let Location::Sqlite(path) = &location
                && !path.exists()
            {
                bail!(
                    "no database at {}: if this instance runs on PostgreSQL, pass --database URL \
                     (and back the database up with pg_dump -Fc)",
                    path.display()
                );
            }
            let live = Store::open_existing_at(&location)
                .await
                .with_context(|| format!("cannot open {}", location.redacted()))?;
            let snapshot = scratch.path().join(DATABASE_FILE);
            let copied = live.backup_to(&snapshot).await;
            live.close().await;
            copied.context("the database snapshot failed")?;
            // The head recorded is the snapshot's own, so restore can demand exactly it.
            let copy = Store::open_existing(&snapshot).await?;
            let report = vsc_store::audit::verify(&copy).await;
            copy.close().await;
            let report = report.context("cannot read the snapshot's audit chain")?;
            (
                DatabaseInfo {
                    engine: "sqlite".into(),
                    included: true,
                    location: location.redacted(),
                },
                audit_head(&report),
                Some(snapshot),
            )
        }
        Backend::Postgres => {
            let store = Store::open_existing_at(&location)
                .await
                .with_context(|| format!("cannot open {}", location.redacted()))?;
            let report = vsc_store::audit::verify(&store).await;
            store.close().await;
            let report = report.context("cannot read the audit chain")?;
            (
                DatabaseInfo {
                    engine: "postgresql".into(),
                    included: false,
                    location: location.redacted(),
                },
                audit_head(&report),
                None,
            )
        }
    };

    // Every member: (path in the data directory, file to read).
    let mut members: Vec<(String, PathBuf)> = Vec::new();
    let mut skipped: Vec<String> = Vec::new();
    let master_canon = fs::canonicalize(&master_key_path).ok();
    collect(
        data,
        "",
        master_canon.as_deref(),
        &mut members,
        &mut skipped,
    )?;
    if !members.iter().any(|(p, _)| p == "ca/root.pem") {
        bail!(
            "{} holds no instance CA (ca/root.pem): is it a vsc data directory?",
            data.display()
        );
    }
    if let Some(snapshot) = snapshot {
        members.push((DATABASE_FILE.into(), snapshot));
    }
    if args.include_master_key {
        // Only a key that unseals this instance's CA is worth archiving.
        check_master_key(&master_key_path, &data.join("ca"), &master_key_path)?;
        members.push((MASTER_KEY_FILE.into(), master_key_path.clone()));
    }
    members.sort();

    let created_at = time::OffsetDateTime::now_utc();
    let mut tmp = tempfile::Builder::new()
        .prefix(".vsc-backup-")
        .suffix(".partial")
        .tempfile_in(&out_dir)
        .with_context(|| format!("cannot write into {}", out_dir.display()))?;
    // tempfile creates 0600 already; say so anyway, the archive holds sealed keys.
    fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o600))?;
    let mut files = Vec::new();
    {
        let gz = flate2::write::GzEncoder::new(
            BufWriter::new(tmp.as_file_mut()),
            flate2::Compression::default(),
        );
        let mut tar = tar::Builder::new(gz);
        let mtime = created_at.unix_timestamp().max(0) as u64;
        for (rel, source) in &members {
            let entry = append_file(&mut tar, rel, source, mtime)
                .with_context(|| format!("cannot archive {}", source.display()))?;
            files.push(entry);
        }
        let manifest = Manifest {
            format: FORMAT.into(),
            vsc_version: env!("CARGO_PKG_VERSION").into(),
            created_at: created_at
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default(),
            source_data_dir: data_canon.display().to_string(),
            database: database.clone(),
            audit: audit.clone(),
            master_key_included: args.include_master_key,
            files: files.clone(),
        };
        let bytes = serde_json::to_vec_pretty(&manifest)?;
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        header.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut header, MANIFEST, bytes.as_slice())?;
        let gz = tar.into_inner()?;
        let mut buffered = gz.finish()?;
        buffered.flush()?;
    }
    tmp.as_file().sync_all()?;
    let archive_bytes = tmp.as_file().metadata()?.len();
    tmp.persist_noclobber(&args.output)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot create {}", args.output.display()))?;
    sync_dir(&out_dir);
    drop(scratch);
    record_backup(&location, &args.output, archive_bytes, &database, &audit).await?;

    let master_key_abs = fs::canonicalize(&master_key_path).unwrap_or(master_key_path.clone());
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "archive": args.output,
                "bytes": archive_bytes,
                "files": files,
                "skipped": skipped,
                "database": database,
                "audit": audit,
                "master_key_included": args.include_master_key,
                "master_key_path": master_key_abs,
            }))?
        );
    } else {
        println!(
            "backup written to {} ({} files, {archive_bytes} bytes, mode 0600)",
            args.output.display(),
            files.len()
        );
        if database.included {
            println!(
                "  database      consistent snapshot of {}",
                database.location
            );
        } else {
            println!(
                "  database      NOT included: {} is PostgreSQL; back it up with pg_dump -Fc",
                database.location
            );
        }
        println!(
            "  audit chain   {} events, head hash {}{}",
            audit.events,
            audit.head_hash,
            if audit.intact { "" } else { " (BROKEN)" }
        );
        if args.include_master_key {
            println!(
                "  master key    included: this archive alone restores the instance; guard it \
                 like the key"
            );
        } else {
            println!(
                "  master key    NOT included. It is {}: keep a copy of it separately from \
                 this backup (the sealed keys in the archive are useless without it) and give \
                 it to `vsc restore --master-key`",
                master_key_abs.display()
            );
        }
        for s in &skipped {
            println!("  skipped       {s}");
        }
    }
    if !audit.intact {
        eprintln!(
            "warning: the audit chain is broken in this snapshot (see `vsc audit verify`); the \
             backup keeps it as it is"
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn audit_head(report: &vsc_store::VerifyReport) -> AuditHead {
    AuditHead {
        events: report.events,
        head_hash: report.head_hash.clone(),
        intact: report.first_broken.is_none(),
    }
}

/// The data directory's files, except the database (its snapshot goes in instead), the master
/// key, and what restore would refuse (links, odd names); `skipped` says what was left out.
fn collect(
    dir: &Path,
    prefix: &str,
    master_key: Option<&Path>,
    members: &mut Vec<(String, PathBuf)>,
    skipped: &mut Vec<String>,
) -> Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .collect::<io::Result<_>>()
        .with_context(|| format!("cannot read {}", dir.display()))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        let kind = entry.file_type()?;
        if prefix.is_empty()
            && (name == MASTER_KEY_FILE
                || name == DATABASE_FILE
                || name.starts_with("vsc.db-")
                || name.starts_with(".vsc-"))
        {
            continue;
        }
        if master_key.is_some_and(|k| fs::canonicalize(&path).ok().as_deref() == Some(k)) {
            continue;
        }
        if kind.is_symlink() || !(kind.is_file() || kind.is_dir()) {
            skipped.push(format!("{rel} (not a regular file)"));
        } else if safe_relative(&rel).is_err() {
            skipped.push(format!("{rel} (name not restorable)"));
        } else if name.ends_with(".tmp") {
            // A write in progress (see write_private): the finished file is what counts.
            skipped.push(format!("{rel} (temporary file)"));
        } else if kind.is_dir() {
            collect(&path, &format!("{rel}/"), master_key, members, skipped)?;
        } else {
            members.push((rel, path));
        }
    }
    Ok(())
}

/// Appends `source` as `data/<rel>`, hashing exactly the bytes written.
fn append_file<W: Write>(
    tar: &mut tar::Builder<W>,
    rel: &str,
    source: &Path,
    mtime: u64,
) -> Result<FileEntry> {
    let file = fs::File::open(source)?;
    let size = file.metadata()?.len();
    let mut reader = Hashing::new(file.take(size));
    let mut header = tar::Header::new_gnu();
    header.set_size(size);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, format!("{DATA_PREFIX}{rel}"), &mut reader)?;
    let (read, sha256) = reader.finish();
    if read != size {
        // The archive's header already says `size`: the whole archive is unusable.
        bail!("the file changed size while it was archived; run the backup again");
    }
    Ok(FileEntry {
        path: rel.to_owned(),
        size,
        sha256,
    })
}

/// A reader that hashes (SHA-256) and counts what passes through it.
struct Hashing<R> {
    inner: R,
    digest: digest::Context,
    count: u64,
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Hashing {
            inner,
            digest: digest::Context::new(&digest::SHA256),
            count: 0,
        }
    }

    fn finish(self) -> (u64, String) {
        (self.count, hex::encode(self.digest.finish().as_ref()))
    }
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.digest.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// `path` if it is a plain relative path (names of letters, digits, `.`, `_`, `-`; no empty,
/// `.` or `..` component): the only member paths restore will write.
fn safe_relative(path: &str) -> Result<&str> {
    let ok = !path.is_empty()
        && path.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | '-'))
        });
    if ok {
        Ok(path)
    } else {
        Err(anyhow!(
            "the archive member path {path:?} is not a plain relative path (absolute, `..`, or \
             odd characters): refused"
        ))
    }
}

/// Loads the master key at `path` and opens the CA's sealed keys with it; messages name the
/// key as `shown` (the operator's file, not a staging copy).
fn check_master_key(path: &Path, ca_dir: &Path, shown: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("no master key at {}", shown.display());
    }
    // The file exists, so this only loads (and checks mode and length); it never creates.
    let key = MasterKey::load_or_create(path)
        .with_context(|| format!("cannot read the master key {}", shown.display()))?;
    match CertificateAuthority::load(ca_dir, &key) {
        Ok(_) => Ok(()),
        Err(PkiError::Sealed) => bail!(
            "the master key {} does not unseal this instance's CA keys: it is not this \
             instance's master key",
            shown.display()
        ),
        Err(e) => Err(e).context("cannot load the instance CA"),
    }
}

/// Opens the archive for reading (gzip or plain tar).
fn open_archive(path: &Path) -> Result<tar::Archive<Box<dyn Read>>> {
    let mut file =
        fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut magic = [0u8; 2];
    let n = file.read(&mut magic)?;
    let head = io::Cursor::new(magic[..n].to_vec());
    let reader = head.chain(file);
    let reader: Box<dyn Read> = if n == 2 && magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    Ok(tar::Archive::new(reader))
}

/// A member of the archive: the manifest, or a file of the data directory.
enum Member {
    Manifest,
    Data(String),
}

/// Names the member and refuses anything that is not a regular file at a plain path.
fn classify(entry: &tar::Entry<'_, Box<dyn Read>>) -> Result<Member> {
    let raw = entry.path_bytes();
    let path = std::str::from_utf8(&raw)
        .map_err(|_| anyhow!("an archive member's path is not UTF-8: refused"))?
        .to_owned();
    let kind = entry.header().entry_type();
    if kind != tar::EntryType::Regular {
        bail!("the archive member {path:?} is not a regular file ({kind:?}): refused");
    }
    if path == MANIFEST {
        return Ok(Member::Manifest);
    }
    let rel = path.strip_prefix(DATA_PREFIX).ok_or_else(|| {
        anyhow!("the archive member {path:?} is outside data/: not a vsc backup, refused")
    })?;
    Ok(Member::Data(safe_relative(rel)?.to_owned()))
}

fn damaged(e: io::Error) -> anyhow::Error {
    anyhow!("the archive is damaged or truncated ({e}); nothing was restored")
}

/// First pass, writing nothing: every member is a regular file at a plain path, appears once,
/// and has the size and SHA-256 the manifest gives; every file of the manifest is there.
fn scan(path: &Path) -> Result<Manifest> {
    let mut archive = open_archive(path)?;
    let mut seen: BTreeMap<String, (u64, String)> = BTreeMap::new();
    let mut manifest: Option<Manifest> = None;
    for entry in archive.entries().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        match classify(&entry)? {
            Member::Manifest => {
                if manifest.is_some() {
                    bail!("the archive holds two manifests: refused");
                }
                if entry.size() > MAX_MANIFEST_BYTES {
                    bail!("the archive's manifest is too large: refused");
                }
                let mut bytes = Vec::new();
                entry
                    .take(MAX_MANIFEST_BYTES)
                    .read_to_end(&mut bytes)
                    .map_err(damaged)?;
                let m: Manifest = serde_json::from_slice(&bytes)
                    .context("the archive's manifest is not a vsc backup manifest")?;
                if m.format != FORMAT {
                    bail!(
                        "the archive's format is {:?}; this vsc reads {FORMAT}",
                        m.format
                    );
                }
                manifest = Some(m);
            }
            Member::Data(rel) => {
                let mut reader = Hashing::new(entry);
                io::copy(&mut reader, &mut io::sink()).map_err(damaged)?;
                let (size, sha256) = reader.finish();
                if seen.insert(rel.clone(), (size, sha256)).is_some() {
                    bail!("the archive holds {rel} twice: refused");
                }
            }
        }
    }
    let manifest = manifest.ok_or_else(|| {
        anyhow!("the archive has no manifest.json: not a vsc backup, or truncated")
    })?;
    let mut listed = BTreeMap::new();
    for f in &manifest.files {
        safe_relative(&f.path)?;
        if listed.insert(f.path.as_str(), f).is_some() {
            bail!("the manifest lists {} twice: refused", f.path);
        }
        match seen.get(&f.path) {
            None => bail!(
                "{} is in the manifest but not in the archive: truncated or altered; nothing \
                 was restored",
                f.path
            ),
            Some((size, sha256)) if *size != f.size || *sha256 != f.sha256 => bail!(
                "{} does not match its SHA-256 in the manifest: the archive is damaged or was \
                 altered; nothing was restored",
                f.path
            ),
            Some(_) => {}
        }
    }
    if let Some(extra) = seen.keys().find(|p| !listed.contains_key(p.as_str())) {
        bail!("{extra} is in the archive but not in its manifest: refused");
    }
    if manifest.master_key_included != listed.contains_key(MASTER_KEY_FILE) {
        bail!("the manifest and the archive disagree about the master key: refused");
    }
    if manifest.database.included != listed.contains_key(DATABASE_FILE) {
        bail!("the manifest and the archive disagree about the database: refused");
    }
    Ok(manifest)
}

/// Second pass: writes every data member under `staging` (directories 0700, files 0600),
/// checking each file's SHA-256 again as it is written.
fn extract(path: &Path, staging: &Path, manifest: &Manifest) -> Result<()> {
    let expected: BTreeMap<&str, &FileEntry> = manifest
        .files
        .iter()
        .map(|f| (f.path.as_str(), f))
        .collect();
    let mut archive = open_archive(path)?;
    for entry in archive.entries().map_err(damaged)? {
        let entry = entry.map_err(damaged)?;
        let Member::Data(rel) = classify(&entry)? else {
            continue;
        };
        let want = expected
            .get(rel.as_str())
            .ok_or_else(|| anyhow!("{rel} changed between two reads of the archive: refused"))?;
        let target = staging.join(&rel);
        if let Some(parent) = target.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&target)
            .with_context(|| format!("cannot write {}", target.display()))?;
        let mut reader = Hashing::new(entry);
        io::copy(&mut reader, &mut file).map_err(damaged)?;
        file.sync_all()?;
        let (size, sha256) = reader.finish();
        if size != want.size || sha256 != want.sha256 {
            bail!("{rel} changed between two reads of the archive: refused");
        }
    }
    Ok(())
}

/// Where the restored master key comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum KeySource {
    Archive,
    File,
    Missing,
}

/// Runs `vsc restore`.
pub async fn restore(args: RestoreArgs) -> Result<ExitCode> {
    let target = &args.data;
    if target.exists() {
        if !target.is_dir() {
            bail!("{} exists and is not a directory", target.display());
        }
        if fs::read_dir(target)?.next().is_some() {
            bail!(
                "{} is not empty: restore into a new or empty directory (nothing was changed)",
                target.display()
            );
        }
    }
    let given_key = match &args.master_key {
        Some(p) => Some(read_key_file(p)?),
        None => None,
    };

    let manifest = scan(&args.archive)?;

    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&parent).with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = tempfile::Builder::new()
        .prefix(".vsc-restore-")
        .tempdir_in(&parent)
        .with_context(|| format!("cannot write into {}", parent.display()))?;
    fs::set_permissions(staging.path(), fs::Permissions::from_mode(0o700))?;
    extract(&args.archive, staging.path(), &manifest)?;

    let key_path = staging.path().join(MASTER_KEY_FILE);
    let source = match (manifest.master_key_included, given_key) {
        (true, Some(given)) => {
            let archived = Zeroizing::new(fs::read(&key_path)?);
            if archived.as_slice() != given.as_slice() {
                bail!(
                    "the archive holds a master key and --master-key names a different one: \
                     nothing was restored"
                );
            }
            KeySource::Archive
        }
        (true, None) => KeySource::Archive,
        (false, Some(given)) => {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key_path)?;
            f.write_all(&given)?;
            f.sync_all()?;
            KeySource::File
        }
        (false, None) => KeySource::Missing,
    };
    if source != KeySource::Missing {
        let shown = match (&args.master_key, source) {
            (Some(given), KeySource::File) => given.clone(),
            _ => PathBuf::from(format!("{} (in the archive)", MASTER_KEY_FILE)),
        };
        check_master_key(&key_path, &staging.path().join("ca"), &shown).map_err(|e| {
            anyhow!("{e:#}; nothing was restored").context("wrong master key".to_owned())
        })?;
    }

    let restored_audit = if manifest.database.included {
        let store = Store::open_existing(&staging.path().join(DATABASE_FILE)).await?;
        let report = vsc_store::audit::verify(&store).await;
        store.close().await;
        let head = audit_head(&report.context("cannot read the restored audit chain")?);
        if head != manifest.audit {
            bail!(
                "the restored audit chain ({} events, head {}) is not the one backed up ({} \
                 events, head {}): nothing was restored",
                head.events,
                head.head_hash,
                manifest.audit.events,
                manifest.audit.head_hash
            );
        }
        Some(head)
    } else {
        None
    };

    // One rename: the target appears whole or not at all (an empty directory is replaced).
    if target.exists() && fs::read_dir(target)?.next().is_some() {
        bail!(
            "{} was written to during the restore: nothing was restored",
            target.display()
        );
    }
    let staged = staging.keep();
    if let Err(e) = fs::rename(&staged, target) {
        let _ = fs::remove_dir_all(&staged);
        return Err(e)
            .with_context(|| format!("cannot move the restore into {}", target.display()));
    }
    sync_dir(&parent);

    let files = manifest.files.len() + usize::from(source == KeySource::File);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "data_dir": target,
                "files": files,
                "backup_created_at": manifest.created_at,
                "backup_vsc_version": manifest.vsc_version,
                "database_restored": manifest.database.included,
                "audit": manifest.audit,
                "audit_verified": restored_audit.is_some(),
                "master_key": source,
                "master_key_checked": source != KeySource::Missing,
            }))?
        );
    } else {
        println!(
            "restored {files} files into {} (backup of {}, vsc {})",
            target.display(),
            manifest.created_at,
            manifest.vsc_version
        );
        match &restored_audit {
            Some(a) => println!(
                "  audit chain   verified: {} events, head hash {} (as backed up)",
                a.events, a.head_hash
            ),
            None => {
                println!(
                    "  database      NOT in this archive (the instance was on PostgreSQL): \
                     restore it with pg_restore into an empty database, then check that \
                     `vsc audit verify --database URL` shows {} events, head hash {}",
                    manifest.audit.events, manifest.audit.head_hash
                );
            }
        }
        match source {
            KeySource::Archive => {
                println!("  master key    restored from the archive; it unseals the CA keys")
            }
            KeySource::File => println!(
                "  master key    copied from {} (0600); it unseals the CA keys",
                args.master_key
                    .as_deref()
                    .unwrap_or(Path::new(""))
                    .display()
            ),
            KeySource::Missing => println!(
                "  master key    NOT restored: copy the instance's master key to {} (mode 0600) \
                 or start the server with --master-key FILE. Do not start the server before: \
                 it cannot unseal the CA keys without it",
                target.join(MASTER_KEY_FILE).display()
            ),
        }
        println!("next: vsc serve --data {}", target.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a master key file given on the command line (exactly 32 bytes).
fn read_key_file(path: &Path) -> Result<Zeroizing<Vec<u8>>> {
    let bytes = Zeroizing::new(
        fs::read(path).with_context(|| format!("cannot read the master key {}", path.display()))?,
    );
    if bytes.len() != vsc_pki::master_key::MASTER_KEY_LEN {
        bail!(
            "{} is not a master key (it must hold exactly {} bytes)",
            path.display(),
            vsc_pki::master_key::MASTER_KEY_LEN
        );
    }
    Ok(bytes)
}

/// Makes a rename or a new file in `dir` durable; best effort (some file systems refuse).
fn sync_dir(dir: &Path) {
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths_are_restorable() {
        for ok in ["vsc.db", "ca/root.key.sealed", "tls/names.txt", "a/b/c-d_e"] {
            assert!(safe_relative(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "/etc/passwd",
            "../evil",
            "ca/../../evil",
            "ca/./x",
            "ca//x",
            "ca/",
            "a\\..\\b",
            "a b",
            "ca/\u{e9}",
        ] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }
}
