//! The keyring file (`<data_dir>/keyring.json`), as Serf keeps one: the
//! installed keys, primary first, and the key operations applied lately (so
//! that a restarted node still refuses their replays). Written whole to a
//! temporary file with mode 0600, flushed, then renamed over the old one, so
//! a crash leaves the old file or the new one, never half of either.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::protocol::replay::KeyOpLog;

pub const FILE_NAME: &str = "keyring.json";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringFile {
    /// Base64 keys, primary (encrypting) first.
    pub keys: Vec<String>,
    /// `(id, at_ms)` of the key operations applied lately.
    #[serde(default)]
    pub key_ops: Vec<(u64, u64)>,
}

pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(FILE_NAME)
}

/// Reads the keyring file: `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<KeyringFile>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let file: KeyringFile = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a keyring file: {e}", path.display()))?;
    for k in &file.keys {
        crate::protocol::crypto::parse_key(k)
            .map_err(|e| format!("{}: a key {e}", path.display()))?;
    }
    Ok(Some(file))
}

/// Writes the keyring file atomically, readable by its owner only.
pub fn save(path: &Path, file: &KeyringFile) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    #[cfg(unix)]
    {
        // A file left by an older version may have wider permissions.
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(serde_json::to_string_pretty(file)?.as_bytes())?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)
}

/// The keyring a node starts with, and where it came from.
pub struct Initial {
    pub keys: Vec<crate::protocol::crypto::Key>,
    pub key_ops: KeyOpLog,
    /// The keyring file, when there is a `data_dir`.
    pub file: Option<PathBuf>,
    /// Whether the keys came from the file (rather than the configuration).
    pub from_file: bool,
}

/// With a `data_dir` holding a keyring file, its keys win over the
/// configured ones (they include every change made at run time, such as a
/// rotation that removed the configured key); otherwise the configured keys.
pub fn initial(cfg: &Config) -> Result<Initial, String> {
    let configured = cfg.keyring().map_err(|(k, e)| format!("{k}: {e}"))?;
    let file = cfg.data_dir.as_deref().map(|d| path_in(Path::new(d)));
    let stored = match &file {
        Some(p) => load(p)?,
        None => None,
    };
    Ok(match stored {
        Some(f) => Initial {
            keys: f
                .keys
                .iter()
                .filter_map(|k| crate::protocol::crypto::parse_key(k).ok())
                .collect(),
            key_ops: KeyOpLog::from_entries(f.key_ops),
            file,
            from_file: true,
        },
        None => Initial {
            keys: configured,
            key_ops: KeyOpLog::default(),
            file,
            from_file: false,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::crypto::{encode_key, generate_key};

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("gossip-keyring-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn roundtrips_with_owner_only_permissions() {
        let d = dir("roundtrip");
        let p = path_in(&d.join("not-yet-made"));
        assert_eq!(load(&p).unwrap(), None);
        let file = KeyringFile {
            keys: vec![encode_key(&generate_key()), encode_key(&generate_key())],
            key_ops: vec![(7, 1000)],
        };
        save(&p, &file).unwrap();
        assert_eq!(load(&p).unwrap(), Some(file));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!p.with_extension("json.tmp").exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_damaged_file_is_an_error_that_names_it() {
        let d = dir("damaged");
        let p = path_in(&d);
        std::fs::write(&p, "{\"keys\": [\"not a key\"]}").unwrap();
        assert!(load(&p).unwrap_err().contains("keyring.json"));
        std::fs::write(&p, "garbage").unwrap();
        assert!(load(&p).unwrap_err().contains("not a keyring file"));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
