//! The runner's stable id, kept in its state dir so a restarted runner is the same runner.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use anyhow::Context;
use uuid::Uuid;

const ID_FILE: &str = "runner-id";

/// Reads the id from `state_dir`, creating the dir (mode 0700) and a new id on first start.
pub fn load_or_create(state_dir: &Path) -> anyhow::Result<Uuid> {
    let path = state_dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => Uuid::parse_str(text.trim()).with_context(|| {
            format!("{} does not hold a runner id; remove it to get a new one", path.display())
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(state_dir)
                .with_context(|| format!("cannot create state dir {}", state_dir.display()))?;
            let id = Uuid::now_v7();
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            writeln!(file, "{id}").with_context(|| format!("cannot write {}", path.display()))?;
            Ok(id)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_survives_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let state = dir.path().join("nested/state");
        let first = load_or_create(&state).expect("created");
        assert_eq!(load_or_create(&state).expect("reloaded"), first);
        fs::write(state.join(ID_FILE), "garbage").expect("overwrite");
        assert!(load_or_create(&state).is_err());
    }
}
