//! The kubelet's `AtomicWriter` for Secret, ConfigMap, downward API and
//! projected volumes: the payload lives in a timestamped directory, `..data`
//! is a symlink to the current one and every user-visible top-level name is a
//! symlink through `..data`. An update writes a new directory and swaps
//! `..data` with one `rename`, so a reader always sees a whole, consistent
//! set of files (a token is never half-written).

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Component, Path};

use anyhow::{Context, bail};

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProjection {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Relative path → content.
pub type Payload = BTreeMap<String, FileProjection>;

fn validate(path: &str) -> anyhow::Result<()> {
    let p = Path::new(path);
    if path.is_empty() || p.is_absolute() || path.starts_with("..") {
        bail!("invalid volume path {path:?}");
    }
    if p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("invalid volume path {path:?}: must be a plain relative path");
    }
    Ok(())
}

fn top_level(path: &str) -> &str {
    path.split('/').next().unwrap_or(path)
}

/// Writes `payload` into `dir`. Returns whether anything changed.
pub fn write(dir: &Path, payload: &Payload) -> anyhow::Result<bool> {
    for path in payload.keys() {
        validate(path)?;
    }
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let old = match fs::read_link(dir.join(DATA)) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => return Err(e).context("read ..data"),
    };
    if let Some(old) = &old
        && matches(&dir.join(old), payload)
    {
        return Ok(false);
    }

    let ts_name = format!(
        "..{}.{:09}",
        k8s_openapi::jiff::Timestamp::now().strftime("%Y_%m_%d_%H_%M_%S"),
        rand::random::<u32>() % 1_000_000_000
    );
    let ts_dir = dir.join(&ts_name);
    fs::create_dir(&ts_dir).with_context(|| format!("create {}", ts_dir.display()))?;
    fs::set_permissions(&ts_dir, fs::Permissions::from_mode(0o755))?;
    for (path, f) in payload {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent)?;
        }
        fs::write(&target, &f.data).with_context(|| format!("write {}", target.display()))?;
        fs::set_permissions(&target, fs::Permissions::from_mode(f.mode))?;
    }

    let new_top: BTreeSet<&str> = payload.keys().map(|p| top_level(p)).collect();
    for name in &new_top {
        let link = dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            symlink(Path::new(DATA).join(name), &link)
                .with_context(|| format!("symlink {}", link.display()))?;
        }
    }

    let tmp = dir.join(DATA_TMP);
    let _ = fs::remove_file(&tmp);
    symlink(&ts_name, &tmp).context("symlink ..data_tmp")?;
    fs::rename(&tmp, dir.join(DATA)).context("swap ..data")?;

    // Names that are gone from the payload.
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("..") || new_top.contains(name.as_ref()) {
            continue;
        }
        if entry.file_type()?.is_symlink() {
            let _ = fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old {
        let _ = fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// Whether the files under `dir` are exactly `payload`.
fn matches(dir: &Path, payload: &Payload) -> bool {
    let mut found = BTreeMap::new();
    if collect(dir, "", &mut found).is_err() {
        return false;
    }
    found == *payload
}

fn collect(dir: &Path, prefix: &str, out: &mut Payload) -> std::io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let meta = entry.metadata()?;
        if meta.is_dir() {
            collect(&entry.path(), &format!("{name}/"), out)?;
        } else {
            out.insert(
                name,
                FileProjection {
                    data: fs::read(entry.path())?,
                    mode: meta.permissions().mode() & 0o7777,
                },
            );
        }
    }
    Ok(())
}

#[cfg(test)]
pub fn test_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!(
        "tidecache-kubelet-test-{name}-{}-{}",
        std::process::id(),
        rand::random::<u32>()
    ));
    let _ = fs::remove_dir_all(&d);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(s: &str, mode: u32) -> FileProjection {
        FileProjection {
            data: s.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_swaps_and_removes() {
        let dir = test_dir("aw");
        let mut p = Payload::new();
        p.insert("token".into(), file("t1", 0o644));
        p.insert("sub/ca.crt".into(), file("ca", 0o600));
        assert!(write(&dir, &p).unwrap());
        assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), "t1");
        assert_eq!(fs::read_to_string(dir.join("sub/ca.crt")).unwrap(), "ca");
        assert!(
            fs::symlink_metadata(dir.join("token"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::metadata(dir.join("sub/ca.crt"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let first = fs::read_link(dir.join(DATA)).unwrap();

        // Same payload: nothing to do.
        assert!(!write(&dir, &p).unwrap());
        assert_eq!(fs::read_link(dir.join(DATA)).unwrap(), first);

        // Update one file and drop another.
        p.insert("token".into(), file("t2", 0o644));
        p.remove("sub/ca.crt");
        assert!(write(&dir, &p).unwrap());
        assert_eq!(fs::read_to_string(dir.join("token")).unwrap(), "t2");
        assert!(fs::symlink_metadata(dir.join("sub")).is_err());
        assert!(!dir.join(&first).exists(), "old payload dir removed");
        let entries: Vec<String> = fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(entries.len(), 3, "{entries:?}"); // token, ..data, ..<ts>
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rejects_escaping_paths() {
        let dir = test_dir("aw-bad");
        for bad in ["../x", "/etc/passwd", "a/../../b", "..data", ""] {
            let mut p = Payload::new();
            p.insert(bad.into(), file("x", 0o644));
            assert!(write(&dir, &p).is_err(), "{bad}");
        }
        let _ = fs::remove_dir_all(&dir);
    }
}
