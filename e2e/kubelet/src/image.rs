//! Image → binary mapping. There is no container runtime here: an image is a
//! name for a binary built from this workspace (or a host binary), given with
//! `--image NAME=PATH`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Directories searched for a command that is not next to the image's
/// binary. Real images carry their own `PATH`; ours is the host's filesystem,
/// so this is the usual image default.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

#[derive(Debug, Clone, Default)]
pub struct ImageMap {
    entries: Vec<(String, PathBuf)>,
}

impl ImageMap {
    /// Parses the `--image NAME=PATH` flags.
    pub fn from_flags(flags: &[String]) -> anyhow::Result<Self> {
        let mut entries = Vec::new();
        for flag in flags {
            let (name, path) = flag
                .split_once('=')
                .with_context(|| format!("--image {flag:?}: expected NAME=PATH"))?;
            if name.is_empty() || path.is_empty() {
                bail!("--image {flag:?}: expected NAME=PATH");
            }
            entries.push((repository_name(name), PathBuf::from(path)));
        }
        Ok(Self { entries })
    }

    /// The binary for an image reference, if the image is known.
    pub fn lookup(&self, image: &str) -> Option<&Path> {
        let repo = repository_name(image);
        self.entries
            .iter()
            .find(|(name, _)| *name == repo)
            .map(|(_, p)| p.as_path())
    }

    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// The repository part of an image reference: registry host, tag and digest
/// stripped, Docker Hub's implicit `library/` removed, so that
/// `ghcr.io/tidecache/cache-node:0.1.0`, `tidecache/cache-node@sha256:…` and
/// `tidecache/cache-node` all compare equal.
pub fn repository_name(image: &str) -> String {
    let mut s = image.trim();
    if let Some((name, _digest)) = s.split_once('@') {
        s = name;
    }
    // A tag is a ':' after the last '/' (a ':' before it is a registry port).
    if let Some(colon) = s.rfind(':')
        && s.rfind('/').is_none_or(|slash| colon > slash)
    {
        s = &s[..colon];
    }
    // The first component is a registry host if it looks like one, as in the
    // Docker reference grammar.
    if let Some((first, rest)) = s.split_once('/')
        && (first.contains('.') || first.contains(':') || first == "localhost")
    {
        s = rest;
    }
    if let Some(rest) = s.strip_prefix("library/")
        && !rest.contains('/')
    {
        s = rest;
    }
    s.to_string()
}

/// What to execute for a container: the resolved program, its `argv[0]` and
/// the remaining arguments (already `$(VAR)`-expanded by the caller).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entrypoint {
    pub program: PathBuf,
    pub argv0: String,
    pub args: Vec<String>,
}

/// Resolves a container's command like a runtime resolves it inside the image:
/// without `command` the image's entrypoint (its binary) runs with `args`;
/// with `command`, `command[0]` is looked up by basename next to the image's
/// binary (so `/usr/local/bin/cache-node` finds the mapped `cache-node`), then
/// as an absolute host path, then on [`DEFAULT_PATH`].
pub fn resolve_entrypoint(
    image_bin: &Path,
    command: &[String],
    args: &[String],
    exists: impl Fn(&Path) -> bool,
) -> anyhow::Result<Entrypoint> {
    let Some(cmd0) = command.first() else {
        return Ok(Entrypoint {
            program: image_bin.to_path_buf(),
            argv0: image_bin.to_string_lossy().into_owned(),
            args: args.to_vec(),
        });
    };
    let program = resolve_command(image_bin, cmd0, &exists)
        .with_context(|| format!("exec: {cmd0:?}: executable file not found in image or $PATH"))?;
    Ok(Entrypoint {
        program,
        argv0: cmd0.clone(),
        args: command[1..].iter().chain(args).cloned().collect(),
    })
}

/// Resolves one command name (also used for exec probes and hooks).
pub fn resolve_command(
    image_bin: &Path,
    cmd0: &str,
    exists: &impl Fn(&Path) -> bool,
) -> Option<PathBuf> {
    let base = Path::new(cmd0).file_name()?;
    if image_bin.file_name() == Some(base) {
        return Some(image_bin.to_path_buf());
    }
    if let Some(dir) = image_bin.parent() {
        let candidate = dir.join(base);
        if exists(&candidate) {
            return Some(candidate);
        }
    }
    if cmd0.starts_with('/') && exists(Path::new(cmd0)) {
        return Some(PathBuf::from(cmd0));
    }
    if cmd0.contains('/') {
        return None;
    }
    DEFAULT_PATH
        .split(':')
        .map(|d| Path::new(d).join(base))
        .find(|p| exists(p))
}

/// Whether a path is an executable regular file.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_names() {
        for (image, want) in [
            ("tidecache/cache-node", "tidecache/cache-node"),
            ("ghcr.io/tidecache/cache-node:0.1.0", "tidecache/cache-node"),
            ("tidecache/cache-node:latest", "tidecache/cache-node"),
            ("tidecache/cache-node@sha256:abcd", "tidecache/cache-node"),
            (
                "ghcr.io/tidecache/cache-node:0.1@sha256:abcd",
                "tidecache/cache-node",
            ),
            (
                "localhost:5000/tidecache/cache-node:dev",
                "tidecache/cache-node",
            ),
            ("localhost/tidecache/operator", "tidecache/operator"),
            ("busybox:1.36", "busybox"),
            ("docker.io/library/busybox:1.36", "busybox"),
            ("library/busybox", "busybox"),
            ("test/sh", "test/sh"),
        ] {
            assert_eq!(repository_name(image), want, "{image}");
        }
    }

    #[test]
    fn lookup_matches_any_spelling() {
        let m = ImageMap::from_flags(&[
            "tidecache/cache-node=/opt/bin/cache-node".into(),
            "test/sh=/bin/sh".into(),
        ])
        .unwrap();
        assert_eq!(
            m.lookup("ghcr.io/tidecache/cache-node:0.1.0"),
            Some(Path::new("/opt/bin/cache-node"))
        );
        assert_eq!(m.lookup("test/sh:1"), Some(Path::new("/bin/sh")));
        assert_eq!(m.lookup("tidecache/operator"), None);
        assert!(ImageMap::from_flags(&["nope".into()]).is_err());
    }

    #[test]
    fn entrypoint_resolution() {
        let exists = |p: &Path| {
            [
                "/opt/bin/cache-node",
                "/opt/bin/helper",
                "/bin/sh",
                "/usr/bin/env",
            ]
            .contains(&p.to_str().unwrap())
        };
        let bin = Path::new("/opt/bin/cache-node");
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

        let e = resolve_entrypoint(bin, &[], &s(&["--port", "6379"]), exists).unwrap();
        assert_eq!(e.program, bin);
        assert_eq!(e.args, s(&["--port", "6379"]));

        let e = resolve_entrypoint(
            bin,
            &s(&["/usr/local/bin/cache-node", "serve"]),
            &s(&["-v"]),
            exists,
        )
        .unwrap();
        assert_eq!(e.program, bin);
        assert_eq!(e.argv0, "/usr/local/bin/cache-node");
        assert_eq!(e.args, s(&["serve", "-v"]));

        let e = resolve_entrypoint(bin, &s(&["helper"]), &[], exists).unwrap();
        assert_eq!(e.program, Path::new("/opt/bin/helper"));

        let e = resolve_entrypoint(bin, &s(&["sh", "-c", "echo"]), &[], exists).unwrap();
        assert_eq!(e.program, Path::new("/bin/sh"));

        let e = resolve_entrypoint(bin, &s(&["/usr/bin/env"]), &[], exists).unwrap();
        assert_eq!(e.program, Path::new("/usr/bin/env"));

        assert!(resolve_entrypoint(bin, &s(&["nonexistent"]), &[], exists).is_err());
        assert!(resolve_entrypoint(bin, &s(&["./rel/x"]), &[], exists).is_err());
    }
}
