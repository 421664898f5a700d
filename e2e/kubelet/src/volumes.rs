//! Pod volumes, materialised under `STATE/pods/<uid>/volumes/<name>` and
//! later bind-mounted into each container at its `mountPath`.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use k8s_openapi::api::core::v1::{
    ConfigMap, DownwardAPIVolumeFile, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod,
    Secret, Volume,
};
use kube::Api;

use crate::agent::Agent;
use crate::atomic_writer::{self, FileProjection, Payload};
use crate::fieldpath;
use crate::node::ALLOCATABLE;
use crate::quantity;

/// A volume's host directory.
#[derive(Debug, Clone)]
pub struct VolumeInfo {
    pub path: PathBuf,
    /// Written by the atomic writer (Secret, ConfigMap, downward API,
    /// projected): always mounted read-only, as the kubelet does.
    pub managed: bool,
}

const DEFAULT_MODE: i32 = 0o644;

/// Sets up (or, with `initial == false`, refreshes) every volume of the pod.
/// On the first setup any failure is returned (the pod waits, as for a
/// failed mount); a refresh keeps the old contents of a volume it cannot
/// update.
pub async fn sync(
    agent: &Agent,
    pod: &Pod,
    root: &Path,
    initial: bool,
) -> Result<HashMap<String, VolumeInfo>, String> {
    let mut out = HashMap::new();
    let volumes = pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_deref())
        .unwrap_or_default();
    for v in volumes {
        // A refresh only concerns content the agent writes; emptyDir,
        // hostPath and claims are set up once.
        let managed = v.secret.is_some()
            || v.config_map.is_some()
            || v.downward_api.is_some()
            || v.projected.is_some();
        if !initial && !managed {
            continue;
        }
        let dir = root.join(&v.name);
        match sync_one(agent, pod, v, &dir).await {
            Ok(info) => {
                out.insert(v.name.clone(), info);
            }
            Err(e) if initial => {
                return Err(format!(
                    "MountVolume.SetUp failed for volume {:?} : {e:#}",
                    v.name
                ));
            }
            Err(e) => {
                tracing::debug!(volume = %v.name, error = %format!("{e:#}"), "volume refresh failed");
            }
        }
    }
    Ok(out)
}

async fn sync_one(agent: &Agent, pod: &Pod, v: &Volume, dir: &Path) -> anyhow::Result<VolumeInfo> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let managed = |path: &Path| VolumeInfo {
        path: path.to_path_buf(),
        managed: true,
    };
    if v.empty_dir.is_some() {
        std::fs::create_dir_all(dir)?;
        return Ok(VolumeInfo {
            path: dir.to_path_buf(),
            managed: false,
        });
    }
    if let Some(hp) = &v.host_path {
        return host_path(agent, &hp.path, hp.type_.as_deref());
    }
    if let Some(pvc) = &v.persistent_volume_claim {
        return claim(agent, ns, &pvc.claim_name).await;
    }
    let mut payload = Payload::new();
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let secret = agent.objects.secret(ns, &name).await?;
        add_secret(
            &mut payload,
            secret.as_deref(),
            &name,
            s.items.as_deref(),
            s.optional == Some(true),
            s.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(c) = &v.config_map {
        let cm = agent.objects.config_map(ns, &c.name).await?;
        add_config_map(
            &mut payload,
            cm.as_deref(),
            &c.name,
            c.items.as_deref(),
            c.optional == Some(true),
            c.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(d) = &v.downward_api {
        add_downward(
            &mut payload,
            pod,
            d.items.as_deref().unwrap_or_default(),
            d.default_mode.unwrap_or(DEFAULT_MODE),
        )?;
    } else if let Some(p) = &v.projected {
        let mode = p.default_mode.unwrap_or(DEFAULT_MODE);
        for src in p.sources.iter().flatten() {
            if let Some(s) = &src.secret {
                let secret = agent.objects.secret(ns, &s.name).await?;
                add_secret(
                    &mut payload,
                    secret.as_deref(),
                    &s.name,
                    s.items.as_deref(),
                    s.optional == Some(true),
                    mode,
                )?;
            } else if let Some(c) = &src.config_map {
                let cm = agent.objects.config_map(ns, &c.name).await?;
                add_config_map(
                    &mut payload,
                    cm.as_deref(),
                    &c.name,
                    c.items.as_deref(),
                    c.optional == Some(true),
                    mode,
                )?;
            } else if let Some(d) = &src.downward_api {
                add_downward(
                    &mut payload,
                    pod,
                    d.items.as_deref().unwrap_or_default(),
                    mode,
                )?;
            } else if let Some(t) = &src.service_account_token {
                let token = agent
                    .tokens
                    .get(
                        pod,
                        t.audience.as_deref(),
                        t.expiration_seconds.unwrap_or(3600),
                    )
                    .await?;
                payload.insert(
                    t.path.clone(),
                    FileProjection {
                        data: token.into_bytes(),
                        mode: mode as u32,
                    },
                );
            } else {
                bail!("unsupported projected volume source (clusterTrustBundle/podCertificate)");
            }
        }
    } else {
        bail!(
            "volume type not supported by tidecache-kubelet (supported: emptyDir, secret, \
             configMap, downwardAPI, projected, hostPath and persistentVolumeClaim under the \
             state dir)"
        );
    }
    atomic_writer::write(dir, &payload)?;
    Ok(managed(dir))
}

fn add_items(
    payload: &mut Payload,
    data: &HashMap<&str, &[u8]>,
    items: Option<&[KeyToPath]>,
    optional: bool,
    default_mode: i32,
    what: &str,
) -> anyhow::Result<()> {
    match items {
        Some(items) if !items.is_empty() => {
            for it in items {
                match data.get(it.key.as_str()) {
                    Some(bytes) => {
                        payload.insert(
                            it.path.clone(),
                            FileProjection {
                                data: bytes.to_vec(),
                                mode: it.mode.unwrap_or(default_mode) as u32,
                            },
                        );
                    }
                    None if optional => {}
                    None => bail!("references non-existent {what} key: {}", it.key),
                }
            }
        }
        _ => {
            for (k, bytes) in data {
                payload.insert(
                    k.to_string(),
                    FileProjection {
                        data: bytes.to_vec(),
                        mode: default_mode as u32,
                    },
                );
            }
        }
    }
    Ok(())
}

fn add_secret(
    payload: &mut Payload,
    secret: Option<&Secret>,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
) -> anyhow::Result<()> {
    let Some(secret) = secret else {
        if optional {
            return Ok(());
        }
        bail!("secret {name:?} not found");
    };
    let data: HashMap<&str, &[u8]> = secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.0.as_slice()))
        .collect();
    add_items(payload, &data, items, optional, mode, "secret")
}

fn add_config_map(
    payload: &mut Payload,
    cm: Option<&ConfigMap>,
    name: &str,
    items: Option<&[KeyToPath]>,
    optional: bool,
    mode: i32,
) -> anyhow::Result<()> {
    let Some(cm) = cm else {
        if optional {
            return Ok(());
        }
        bail!("configmap {name:?} not found");
    };
    let mut data: HashMap<&str, &[u8]> = cm
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str(), v.as_bytes()))
        .collect();
    data.extend(
        cm.binary_data
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str(), v.0.as_slice())),
    );
    add_items(payload, &data, items, optional, mode, "config")
}

fn add_downward(
    payload: &mut Payload,
    pod: &Pod,
    items: &[DownwardAPIVolumeFile],
    default_mode: i32,
) -> anyhow::Result<()> {
    for it in items {
        let value = if let Some(f) = &it.field_ref {
            fieldpath::metadata_value(pod, &f.field_path)?
        } else if let Some(r) = &it.resource_field_ref {
            let cname = r.container_name.as_deref().unwrap_or_default();
            let spec = pod.spec.as_ref().context("pod has no spec")?;
            let c = spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .find(|c| c.name == cname)
                .ok_or_else(|| anyhow!("container {cname:?} not found"))?;
            quantity::container_resource_value(c, &r.resource, r.divisor.as_ref(), &ALLOCATABLE)?
        } else {
            continue;
        };
        payload.insert(
            it.path.clone(),
            FileProjection {
                data: value.into_bytes(),
                mode: it.mode.unwrap_or(default_mode) as u32,
            },
        );
    }
    Ok(())
}

/// Whether `path` is inside `dir`, lexically (no `..` allowed).
pub fn is_within(path: &Path, dir: &Path) -> bool {
    path.is_absolute()
        && !path.components().any(|c| matches!(c, Component::ParentDir))
        && path.starts_with(dir)
}

/// hostPath volumes give a pod the node's filesystem; here the "node" is the
/// developer's machine, so only paths inside the agent's state dir are
/// allowed.
fn host_path(agent: &Agent, path: &str, type_: Option<&str>) -> anyhow::Result<VolumeInfo> {
    let p = PathBuf::from(path);
    if !is_within(&p, &agent.state_dir) {
        bail!(
            "hostPath {path:?} refused: tidecache-kubelet only allows hostPath volumes under its \
             state dir {}",
            agent.state_dir.display()
        );
    }
    match type_.unwrap_or_default() {
        "DirectoryOrCreate" => std::fs::create_dir_all(&p)?,
        "FileOrCreate" => {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&p)?;
        }
        "Directory" if !p.is_dir() => {
            bail!("hostPath type check failed: {path} is not a directory")
        }
        "File" if !p.is_file() => bail!("hostPath type check failed: {path} is not a file"),
        _ => {}
    }
    Ok(VolumeInfo {
        path: p,
        managed: false,
    })
}

/// A claim works if it is bound to a hostPath or local PersistentVolume
/// under the state dir (there is no storage provisioner otherwise).
async fn claim(agent: &Agent, ns: &str, name: &str) -> anyhow::Result<VolumeInfo> {
    let client = agent.objects.client().clone();
    let pvc = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await?
        .ok_or_else(|| anyhow!("persistentvolumeclaim {name:?} not found"))?;
    let pv_name = pvc
        .spec
        .and_then(|s| s.volume_name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("persistentvolumeclaim {name:?} is not bound"))?;
    let pv = Api::<PersistentVolume>::all(client).get(&pv_name).await?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| anyhow!("persistentvolume {pv_name:?} is neither hostPath nor local"))?;
    host_path(agent, &path, Some("DirectoryOrCreate"))
}

/// The host path to bind for a volumeMount's `subPath` (already expanded).
pub fn sub_path(vol: &VolumeInfo, sub: &str) -> anyhow::Result<PathBuf> {
    let rel = Path::new(sub);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        bail!("invalid subPath {sub:?}");
    }
    let p = vol.path.join(rel);
    if vol.managed {
        // Resolve the ..data symlinks, and make sure they stay inside.
        let real = p
            .canonicalize()
            .with_context(|| format!("subPath {sub:?} does not exist"))?;
        let base = vol.path.canonicalize()?;
        if !real.starts_with(&base) {
            bail!("subPath {sub:?} escapes its volume");
        }
        Ok(real)
    } else {
        if !p.exists() {
            // As the kubelet: a missing subPath of a writable volume is
            // created as a directory.
            std::fs::create_dir_all(&p)?;
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn secret_items_and_modes() {
        let s = Secret {
            data: Some(BTreeMap::from([
                ("tls.crt".into(), ByteString(b"CRT".to_vec())),
                ("tls.key".into(), ByteString(b"KEY".to_vec())),
            ])),
            ..Default::default()
        };
        let mut p = Payload::new();
        add_secret(&mut p, Some(&s), "s", None, false, 0o600).unwrap();
        assert_eq!(p["tls.key"].data, b"KEY");
        assert_eq!(p["tls.key"].mode, 0o600);

        let mut p = Payload::new();
        let items = [KeyToPath {
            key: "tls.crt".into(),
            path: "certs/server.crt".into(),
            mode: Some(0o444),
        }];
        add_secret(&mut p, Some(&s), "s", Some(&items), false, 0o644).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p["certs/server.crt"].mode, 0o444);

        let missing = [KeyToPath {
            key: "nope".into(),
            path: "x".into(),
            mode: None,
        }];
        assert!(
            add_secret(
                &mut Payload::new(),
                Some(&s),
                "s",
                Some(&missing),
                false,
                0o644
            )
            .is_err()
        );
        assert!(
            add_secret(
                &mut Payload::new(),
                Some(&s),
                "s",
                Some(&missing),
                true,
                0o644
            )
            .is_ok()
        );
        assert_eq!(
            add_secret(&mut Payload::new(), None, "s", None, false, 0o644)
                .unwrap_err()
                .to_string(),
            "secret \"s\" not found"
        );
        assert!(add_secret(&mut Payload::new(), None, "s", None, true, 0o644).is_ok());
    }

    #[test]
    fn config_map_includes_binary_data() {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([("a".into(), "text".into())])),
            binary_data: Some(BTreeMap::from([("b".into(), ByteString(vec![0, 1]))])),
            ..Default::default()
        };
        let mut p = Payload::new();
        add_config_map(&mut p, Some(&cm), "cm", None, false, 0o644).unwrap();
        assert_eq!(p["a"].data, b"text");
        assert_eq!(p["b"].data, [0, 1]);
    }

    #[test]
    fn host_paths_must_stay_in_the_state_dir() {
        let state = Path::new("/var/lib/tc");
        assert!(is_within(Path::new("/var/lib/tc/pv/a"), state));
        assert!(!is_within(Path::new("/var/lib/tc/../etc"), state));
        assert!(!is_within(Path::new("/etc"), state));
        assert!(!is_within(Path::new("/var/lib/tcx"), state));
        assert!(!is_within(Path::new("pv/a"), state));
    }

    #[test]
    fn sub_paths() {
        let dir = atomic_writer::test_dir("subpath");
        let mut payload = Payload::new();
        payload.insert(
            "key".into(),
            FileProjection {
                data: b"v".to_vec(),
                mode: 0o644,
            },
        );
        atomic_writer::write(&dir, &payload).unwrap();
        let managed = VolumeInfo {
            path: dir.clone(),
            managed: true,
        };
        let p = sub_path(&managed, "key").unwrap();
        assert!(p.to_string_lossy().contains("/..2"), "{p:?}");
        assert_eq!(std::fs::read(&p).unwrap(), b"v");
        assert!(sub_path(&managed, "../x").is_err());
        assert!(sub_path(&managed, "missing").is_err());
        let empty = VolumeInfo {
            path: dir.join("empty"),
            managed: false,
        };
        assert!(sub_path(&empty, "a/b").unwrap().is_dir());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
