//! Small filesystem helpers shared by the master key and CA storage.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::error::PkiError;

/// Writes `contents` to `path` so that readers see either the old file or the complete new one:
/// the data goes to a sibling temp file that is synced and then renamed over `path`.
pub(crate) fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .ok_or_else(|| PkiError::InvalidInput(format!("{} is not a file path", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = open_for_write(&tmp, mode, false)?;
        // A stale temp file from an earlier crash keeps its old mode through open(), so set it.
        set_mode(&file, mode).map_err(PkiError::io(&tmp))?;
        file.write_all(contents).map_err(PkiError::io(&tmp))?;
        file.sync_all().map_err(PkiError::io(&tmp))?;
        fs::rename(&tmp, path).map_err(PkiError::io(path))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir);
    Ok(())
}

/// Opens `path` for writing with `mode` applied at creation; `exclusive` fails if it exists.
pub(crate) fn open_for_write(path: &Path, mode: u32, exclusive: bool) -> Result<File, PkiError> {
    let mut options = OpenOptions::new();
    options.write(true);
    if exclusive {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    options.open(path).map_err(PkiError::io(path))
}

/// Creates `dir` (and missing parents) readable only by the owner.
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), PkiError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(PkiError::io(dir))
}

/// True if group or others have any access to the file.
pub(crate) fn is_group_or_world_accessible(meta: &fs::Metadata) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o077 != 0
    }
    #[cfg(not(unix))]
    {
        let _ = meta;
        false
    }
}

/// Makes a rename or file creation in `dir` durable. Best effort: some filesystems refuse to
/// fsync directories, and the data itself has already been synced.
pub(crate) fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn set_mode(file: &File, mode: u32) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(mode))
    }
    #[cfg(not(unix))]
    {
        let _ = (file, mode);
        Ok(())
    }
}
