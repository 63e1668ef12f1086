//! Where the CLI finds HQ and its token: flags and environment first, then the file
//! `agentrelay login` wrote (mode 0600, in the user's config directory).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// What `agentrelay login` saves.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Saved {
    /// HQ's base URL.
    pub hq: Option<String>,
    /// The token, kept only in this file.
    pub token: Option<String>,
    /// A private CA for HQ's certificate.
    pub ca_cert: Option<PathBuf>,
}

/// The credentials file: `--credentials`/`AGENTRELAY_CREDENTIALS`, else the XDG config directory.
pub fn path(explicit: Option<&Path>) -> Result<PathBuf, CliError> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir()
            .ok_or_else(|| {
                CliError::Config("cannot find a home directory; set AGENTRELAY_CREDENTIALS".into())
            })?
            .join(".config"),
    };
    Ok(base.join("agentrelay").join("config.toml"))
}

/// Reads the file; a missing file is an empty one.
pub fn load(path: &Path) -> Result<Saved, CliError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Saved::default()),
        Err(e) => return Err(CliError::Config(format!("cannot read {}: {e}", path.display()))),
    };
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        crate::console::say(&format!(
            "agentrelay: warning: {} is readable by others; run chmod 600 on it",
            path.display()
        ));
    }
    toml::from_str(&text).map_err(|e| CliError::Config(format!("{} is not valid: {e}", path.display())))
}

/// Writes the file atomically with mode 0600 (its directory 0700).
pub fn save(path: &Path, saved: &Saved) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))?;
    let text = toml::to_string(saved).context("encoding the credentials")?;
    let temp = dir.join(format!(".config.toml.{}", std::process::id()));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .with_context(|| format!("creating {}", temp.display()))?;
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saves_with_mode_0600_and_reads_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("nested/agentrelay/config.toml");
        let saved =
            Saved { hq: Some("http://hq:8080".into()), token: Some("arl_usr_x".into()), ca_cert: None };
        save(&path, &saved).expect("saved");
        let mode = std::fs::metadata(&path).expect("exists").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = std::fs::metadata(path.parent().expect("dir")).expect("dir").permissions().mode();
        assert_eq!(dir_mode & 0o777, 0o700);
        let back = load(&path).expect("loads");
        assert_eq!(back.hq.as_deref(), Some("http://hq:8080"));
        assert_eq!(back.token.as_deref(), Some("arl_usr_x"));
        // Saving again replaces the file rather than failing on the existing one.
        save(&path, &Saved { token: None, ..back }).expect("saved again");
        assert!(load(&path).expect("loads").token.is_none());
    }

    #[test]
    fn missing_file_is_empty_and_garbage_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        assert!(load(&path).expect("empty").hq.is_none());
        std::fs::write(&path, "hq = [").expect("write");
        let error = load(&path).expect_err("invalid").to_string();
        assert!(error.contains("is not valid"), "{error}");
    }
}
