//! The objects a `CacheCluster` calls for, built as pure functions of the
//! spec (no API server): the auth Secret, one headless Service and one
//! StatefulSet per shard, and the client Service.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec, StatefulSetUpdateStrategy};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector,
    PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource as _, ResourceExt as _};

use crate::crd::{CacheCluster, CacheClusterSpec, default_password_key};

/// Port clients use.
pub const CLIENT_PORT: u16 = 6379;
/// Port of the node's health and metrics endpoints.
pub const HTTP_PORT: u16 = 9121;
/// Key of the admin password in the operator-managed Secret.
/// The admin password's key in `<cluster>-admin`.
pub const ADMIN_KEY: &str = "password";
/// Where clusters made before `<cluster>-admin` kept the admin password,
/// in `<cluster>-auth` (see `act::ensure_auth_secret`'s migration).
pub const LEGACY_ADMIN_KEY: &str = "admin-password";

const AUTH_DIR: &str = "/etc/tidecache/auth";
const ADMIN_DIR: &str = "/etc/tidecache/admin";
const SNAPSHOT_KEY_DIR: &str = "/etc/tidecache/snapshot-key";

/// Label keys. The `app.kubernetes.io` ones follow Kubernetes' recommended labels.
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const INSTANCE: &str = "app.kubernetes.io/instance";
    pub const COMPONENT: &str = "app.kubernetes.io/component";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    pub const CLUSTER: &str = "tidecache.io/cluster";
    pub const SHARD: &str = "tidecache.io/shard";
    /// `primary` or `replica`, set by the operator on each recorded pod.
    pub const ROLE: &str = "tidecache.io/role";
}

/// The field manager of every server-side apply.
pub const MANAGER: &str = "tidecache-operator";

/// Defaults that come from the operator's own configuration.
#[derive(Debug, Clone)]
pub struct Defaults {
    /// The cache-node image used when the spec names none.
    pub node_image: String,
}

/// The name of shard `i`'s StatefulSet and headless Service.
pub fn shard_name(cluster: &str, i: usize) -> String {
    format!("{cluster}-{i}")
}

/// The Secret the operator generates: the admin password always, and the
/// client password when the user brings none.
/// The Secret holding the admin password, which applications never read.
pub fn admin_secret_name(cluster: &str) -> String {
    format!("{cluster}-admin")
}

pub fn auth_secret_name(cluster: &str) -> String {
    format!("{cluster}-auth")
}

/// The selector labels every pod of the cluster carries.
pub fn cluster_labels(cc: &CacheCluster) -> BTreeMap<String, String> {
    BTreeMap::from([
        (labels::NAME.to_owned(), "tidecache".to_owned()),
        (labels::INSTANCE.to_owned(), cc.name_any()),
        (labels::CLUSTER.to_owned(), cc.name_any()),
    ])
}

/// The selector of the cluster's pods, as the scale subresource wants it.
pub fn selector_string(cc: &CacheCluster) -> String {
    cluster_labels(cc)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn shard_labels(cc: &CacheCluster, i: usize) -> BTreeMap<String, String> {
    let mut l = cluster_labels(cc);
    l.insert(labels::SHARD.to_owned(), i.to_string());
    l
}

fn object_labels(cc: &CacheCluster) -> BTreeMap<String, String> {
    let mut l = cluster_labels(cc);
    l.insert(labels::COMPONENT.to_owned(), "cache-node".to_owned());
    l.insert(labels::MANAGED_BY.to_owned(), MANAGER.to_owned());
    l
}

fn owner(cc: &CacheCluster) -> OwnerReference {
    cc.controller_owner_ref(&())
        .expect("a CacheCluster read from the API has a uid")
}

fn meta(cc: &CacheCluster, name: String, labels: BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: cc.namespace(),
        labels: Some(labels),
        owner_references: Some(vec![owner(cc)]),
        ..ObjectMeta::default()
    }
}

/// The client Service: every node of the cluster; cluster-aware clients
/// discover the rest from whichever node answers.
pub fn client_service(cc: &CacheCluster) -> Service {
    Service {
        metadata: meta(cc, cc.name_any(), object_labels(cc)),
        spec: Some(ServiceSpec {
            selector: Some(cluster_labels(cc)),
            ports: Some(vec![redis_port()]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

fn redis_port() -> ServicePort {
    ServicePort {
        name: Some("redis".into()),
        port: CLIENT_PORT.into(),
        target_port: Some(IntOrString::String("redis".into())),
        ..ServicePort::default()
    }
}

/// The headless Service that gives shard `i`'s pods stable DNS names.
pub fn shard_service(cc: &CacheCluster, i: usize) -> Service {
    let mut labels = object_labels(cc);
    labels.insert(labels::SHARD.to_owned(), i.to_string());
    Service {
        metadata: meta(cc, shard_name(&cc.name_any(), i), labels),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            selector: Some(shard_labels(cc, i)),
            ports: Some(vec![redis_port()]),
            // Nodes must find each other before they are ready: readiness
            // itself waits for the topology.
            publish_not_ready_addresses: Some(true),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// A shard's PodDisruptionBudget, over its replicas: voluntary
/// disruptions (node drains, evictions) take at most one of them at a
/// time. Its primary is under [`primaries_pdb`] instead (a pod under two
/// budgets cannot be evicted at all). A minimum, not a maximum: with
/// `maxUnavailable` Kubernetes counts every pod of the StatefulSet as
/// expected, primary included, and would allow nothing.
pub fn shard_pdb(cc: &CacheCluster, i: usize) -> PodDisruptionBudget {
    let mut labels = object_labels(cc);
    labels.insert(labels::SHARD.to_owned(), i.to_string());
    let mut selector = shard_labels(cc, i);
    selector.insert(labels::ROLE.to_owned(), "replica".to_owned());
    let replicas = cc.spec.replicas();
    budget(
        cc,
        shard_name(&cc.name_any(), i),
        labels,
        selector,
        Budget::MinAvailable((replicas - 1).max(0)),
    )
}

/// The cluster's primaries' PodDisruptionBudget: none may be evicted. A
/// drain's eviction of a primary is refused until the operator, seeing the
/// node cordoned, has switched it over and relabelled it a replica
/// ([`super::evacuate`]).
pub fn primaries_pdb(cc: &CacheCluster) -> PodDisruptionBudget {
    let mut selector = cluster_labels(cc);
    selector.insert(labels::ROLE.to_owned(), "primary".to_owned());
    budget(
        cc,
        primaries_pdb_name(&cc.name_any()),
        object_labels(cc),
        selector,
        Budget::MaxUnavailable(0),
    )
}

/// How many of a budget's pods may go.
enum Budget {
    MinAvailable(i32),
    MaxUnavailable(i32),
}

/// The name of the primaries' PodDisruptionBudget.
pub fn primaries_pdb_name(cluster: &str) -> String {
    format!("{cluster}-primaries")
}

fn budget(
    cc: &CacheCluster,
    name: String,
    labels: BTreeMap<String, String>,
    selector: BTreeMap<String, String>,
    allowed: Budget,
) -> PodDisruptionBudget {
    let (min_available, max_unavailable) = match allowed {
        Budget::MinAvailable(n) => (Some(IntOrString::Int(n)), None),
        Budget::MaxUnavailable(n) => (None, Some(IntOrString::Int(n))),
    };
    PodDisruptionBudget {
        metadata: meta(cc, name, labels),
        spec: Some(PodDisruptionBudgetSpec {
            min_available,
            max_unavailable,
            selector: Some(LabelSelector {
                match_labels: Some(selector),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}

/// The value of a Kubernetes quantity (`512Mi`, `1G`, `1.5Gi`, `1e9`,
/// `500m`), `None` when it is not one or is negative.
pub fn quantity_value(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| c.is_ascii_alphabetic() && c != 'e' && c != 'E')
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let mul: f64 = match suffix {
        "" => 1.0,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "m" => 1e-3,
        _ => return None,
    };
    let n: f64 = num.parse().ok()?;
    let v = n * mul;
    (v.is_finite() && v >= 0.0).then_some(v)
}

/// Converts a Kubernetes memory quantity to bytes.
pub fn quantity_bytes(q: &str) -> Option<u64> {
    quantity_value(q).map(|v| v.floor() as u64)
}

/// Converts a Kubernetes CPU quantity (`2`, `500m`, `1.5`) to millicores.
pub fn quantity_millicores(q: &str) -> Option<u64> {
    quantity_value(q).map(|v| (v * 1000.0).round() as u64)
}

/// The node's `maxmemory`: the spec's, else 75% of the memory limit (the
/// rest is headroom for connections, buffers and fragmentation), else none.
pub fn max_memory_bytes(cc: &CacheCluster) -> u64 {
    node_data_bytes(&cc.spec)
}

/// [`max_memory_bytes`] of a spec.
pub fn node_data_bytes(spec: &CacheClusterSpec) -> u64 {
    if let Some(q) = &spec.node.max_memory {
        return quantity_bytes(&q.0).unwrap_or(0);
    }
    node_limit(spec, "memory")
        .and_then(|q| quantity_bytes(&q))
        .map_or(0, |limit| limit / 4 * 3)
}

/// A node's CPU allowance in millicores: its CPU limit, else its request,
/// else 0 (unknown).
pub fn node_millicores(spec: &CacheClusterSpec) -> u64 {
    node_limit(spec, "cpu")
        .or_else(|| {
            spec.node_resources()?
                .requests?
                .get("cpu")
                .map(|q| q.0.clone())
        })
        .and_then(|q| quantity_millicores(&q))
        .unwrap_or(0)
}

fn node_limit(spec: &CacheClusterSpec, resource: &str) -> Option<String> {
    spec.node_resources()?
        .limits?
        .get(resource)
        .map(|q| q.0.clone())
}

/// Where the client password comes from: (Secret name, key).
pub fn password_source(cc: &CacheCluster) -> (String, String) {
    match cc
        .spec
        .auth
        .as_ref()
        .and_then(|a| a.password_secret.as_ref())
    {
        Some(r) => (r.name.clone(), r.key.clone()),
        None => (auth_secret_name(&cc.name_any()), default_password_key()),
    }
}

fn field_env(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

fn secret_volume(name: &str, secret: String, key: String, path: &str) -> Volume {
    Volume {
        name: name.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret),
            items: Some(vec![KeyToPath {
                key,
                path: path.into(),
                mode: None,
            }]),
            default_mode: Some(0o400),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("http".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// The node's environment: its address and name from the downward API,
/// and its CPU allowance when the spec gives one (what the node reports as
/// `tidecache_cpu_limit_millicores`, the autoscaler's measure of CPU).
fn node_env(cc: &CacheCluster) -> Vec<EnvVar> {
    let mut env = vec![
        field_env("POD_IP", "status.podIP"),
        field_env("POD_NAME", "metadata.name"),
    ];
    let millicores = node_millicores(&cc.spec);
    if millicores > 0 {
        env.push(value_env(
            "TIDECACHE_CPU_LIMIT_MILLICORES",
            millicores.to_string(),
        ));
    }
    env.extend(snapshot_env(cc));
    env
}

fn value_env(name: &str, value: String) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value),
        ..EnvVar::default()
    }
}

/// The snapshot store's settings (the node's `--snapshot-*` flags), the
/// credentials from the user's Secret, the encryption key's mounted file.
fn snapshot_env(cc: &CacheCluster) -> Vec<EnvVar> {
    let Some(storage) = cc.spec.snapshots.as_ref().map(|s| &s.storage) else {
        return Vec::new();
    };
    let mut env = vec![
        value_env("TIDECACHE_SNAPSHOT_STORE", storage.url.clone()),
        value_env(
            "TIDECACHE_SNAPSHOT_PATH_STYLE",
            if storage.path_style.unwrap_or(true) {
                "yes"
            } else {
                "no"
            }
            .into(),
        ),
        value_env(
            "TIDECACHE_SNAPSHOT_ZSTD_LEVEL",
            storage.compression_level.unwrap_or(0).to_string(),
        ),
    ];
    if let Some(endpoint) = &storage.endpoint {
        env.push(value_env("TIDECACHE_SNAPSHOT_ENDPOINT", endpoint.clone()));
    }
    if let Some(region) = &storage.region {
        env.push(value_env("TIDECACHE_SNAPSHOT_REGION", region.clone()));
    }
    if let Some(secret) = &storage.credentials_secret {
        for key in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"] {
            env.push(EnvVar {
                name: key.into(),
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(k8s_openapi::api::core::v1::SecretKeySelector {
                        name: secret.clone(),
                        key: key.into(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
                ..EnvVar::default()
            });
        }
    }
    if storage.encryption_key_secret.is_some() {
        env.push(value_env(
            "TIDECACHE_SNAPSHOT_ENCRYPTION_KEY_FILE",
            format!("{SNAPSHOT_KEY_DIR}/key"),
        ));
    }
    env
}

/// The encryption key's Secret, as a volume, when snapshots are encrypted.
fn snapshot_key_volume(cc: &CacheCluster) -> Option<(Volume, VolumeMount)> {
    let key = cc
        .spec
        .snapshots
        .as_ref()?
        .storage
        .encryption_key_secret
        .as_ref()?;
    Some((
        secret_volume("snapshot-key", key.name.clone(), key.key.clone(), "key"),
        VolumeMount {
            name: "snapshot-key".into(),
            mount_path: SNAPSHOT_KEY_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    ))
}

/// Shard `i`'s StatefulSet of `pods` pods: a primary and
/// `replicasPerShard` replicas, or more while a primary must move off a
/// pod a smaller shard drops ([`super::evacuate::pods_per_shard`]).
pub fn shard_statefulset(
    cc: &CacheCluster,
    i: usize,
    pods: usize,
    defaults: &Defaults,
) -> StatefulSet {
    let name = shard_name(&cc.name_any(), i);
    let (pw_secret, pw_key) = password_source(cc);
    let args: Vec<String> = [
        "--cluster-enabled",
        "yes",
        "--port",
        &CLIENT_PORT.to_string(),
        // Bind the pod's own address, not 0.0.0.0: correct on any cluster,
        // and required where pods share a network namespace (the e2e harness).
        "--bind",
        "$(POD_IP)",
        "--cluster-announce-ip",
        "$(POD_IP)",
        "--node-name",
        "$(POD_NAME)",
        "--http-port",
        &HTTP_PORT.to_string(),
        "--requirepass-file",
        &format!("{AUTH_DIR}/password"),
        "--admin-password-file",
        &format!("{ADMIN_DIR}/password"),
        "--maxmemory",
        &max_memory_bytes(cc).to_string(),
        "--maxmemory-policy",
        cc.spec.node.max_memory_policy.as_str(),
        "--log-format",
        "json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let container = Container {
        name: "cache-node".into(),
        image: Some(
            cc.spec
                .image
                .clone()
                .unwrap_or_else(|| defaults.node_image.clone()),
        ),
        image_pull_policy: cc.spec.image_pull_policy.map(|p| p.as_str().to_owned()),
        args: Some(args),
        env: Some(node_env(cc)),
        ports: Some(vec![
            ContainerPort {
                name: Some("redis".into()),
                container_port: CLIENT_PORT.into(),
                ..ContainerPort::default()
            },
            ContainerPort {
                name: Some("http".into()),
                container_port: HTTP_PORT.into(),
                ..ContainerPort::default()
            },
        ]),
        readiness_probe: Some(http_probe("/readyz", 2, 1)),
        liveness_probe: Some(http_probe("/livez", 10, 3)),
        // The liveness probe waits for the process to answer at all (up to
        // a minute: a replica's first full sync keeps the node busy), so a
        // starting pod reports no failures; its first try comes a second
        // after the start, when the process listens (a try at once failed
        // with `connection refused`, an `Unhealthy` event, in the drain
        // e2e).
        startup_probe: Some(Probe {
            initial_delay_seconds: Some(1),
            ..http_probe("/livez", 1, 60)
        }),
        resources: cc.spec.node_resources(),
        volume_mounts: Some(
            [
                VolumeMount {
                    name: "auth".into(),
                    mount_path: AUTH_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
                VolumeMount {
                    name: "admin".into(),
                    mount_path: ADMIN_DIR.into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            ]
            .into_iter()
            .chain(snapshot_key_volume(cc).map(|(_, m)| m))
            .collect(),
        ),
        ..Container::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        // Nodes never call the Kubernetes API.
        automount_service_account_token: Some(false),
        termination_grace_period_seconds: Some(30),
        volumes: Some(
            [
                secret_volume("auth", pw_secret, pw_key, "password"),
                secret_volume(
                    "admin",
                    admin_secret_name(&cc.name_any()),
                    ADMIN_KEY.into(),
                    "password",
                ),
            ]
            .into_iter()
            .chain(snapshot_key_volume(cc).map(|(v, _)| v))
            .collect(),
        ),
        ..PodSpec::default()
    };
    let mut pod_labels = shard_labels(cc, i);
    pod_labels.insert(labels::COMPONENT.to_owned(), "cache-node".to_owned());
    let mut sts_labels = object_labels(cc);
    sts_labels.insert(labels::SHARD.to_owned(), i.to_string());
    StatefulSet {
        metadata: meta(cc, name.clone(), sts_labels),
        spec: Some(StatefulSetSpec {
            replicas: Some(pods as i32),
            service_name: Some(name),
            pod_management_policy: Some("Parallel".into()),
            // The operator replaces pods itself, replicas first and a
            // primary only after a switchover (see `rolling`).
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("OnDelete".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(shard_labels(cc, i)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    }
}

/// The name of pod `ordinal` of shard `i`.
pub fn pod_name(cluster: &str, shard: usize, ordinal: usize) -> String {
    format!("{}-{ordinal}", shard_name(cluster, shard))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn cluster(yaml: &str) -> CacheCluster {
        let mut cc: CacheCluster = serde_yaml::from_str(yaml).unwrap();
        cc.metadata.uid = Some("uid-1".into());
        cc
    }

    const SAMPLE: &str = r#"
apiVersion: tidecache.io/v1alpha1
kind: CacheCluster
metadata: {name: sessions, namespace: prod}
spec:
  shards: 3
  replicasPerShard: 1
  node:
    resources: {limits: {memory: 1Gi}}
"#;

    fn defaults() -> Defaults {
        Defaults {
            node_image: "tidecache/cache-node:0.1.0".into(),
        }
    }

    #[test]
    fn quantities_convert_to_bytes() {
        assert_eq!(quantity_bytes("1Gi"), Some(1 << 30));
        assert_eq!(quantity_bytes("512Mi"), Some(512 << 20));
        assert_eq!(quantity_bytes("1G"), Some(1_000_000_000));
        assert_eq!(quantity_bytes("1.5Ki"), Some(1536));
        assert_eq!(quantity_bytes("1e3"), Some(1000));
        assert_eq!(quantity_bytes("100"), Some(100));
        assert_eq!(quantity_bytes("lots"), None);
        assert_eq!(quantity_bytes("-1Gi"), None);
    }

    #[test]
    fn a_statefulset_per_shard_with_the_nodes_flags() {
        let cc = cluster(SAMPLE);
        let sts = shard_statefulset(&cc, 2, 2, &defaults());
        assert_eq!(sts.metadata.name.as_deref(), Some("sessions-2"));
        assert_eq!(sts.metadata.namespace.as_deref(), Some("prod"));
        let owner = &sts.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("CacheCluster", Some(true))
        );
        let spec = sts.spec.unwrap();
        assert_eq!(spec.replicas, Some(2));
        assert_eq!(
            spec.update_strategy
                .as_ref()
                .and_then(|u| u.type_.as_deref()),
            Some("OnDelete"),
            "the operator rolls pods itself"
        );
        assert_eq!(spec.service_name.as_deref(), Some("sessions-2"));
        let sel = spec.selector.match_labels.unwrap();
        assert_eq!(sel.get(labels::SHARD).map(String::as_str), Some("2"));
        let pod = spec.template.spec.unwrap();
        let c = &pod.containers[0];
        assert_eq!(c.image.as_deref(), Some("tidecache/cache-node:0.1.0"));
        let args = c.args.as_ref().unwrap().join(" ");
        assert!(args.contains("--cluster-enabled yes"));
        assert!(args.contains("--maxmemory 805306368"), "75% of 1Gi: {args}");
        assert!(args.contains("--node-name $(POD_NAME)"));
        let vols = pod.volumes.unwrap();
        assert_eq!(
            vols[0].secret.as_ref().unwrap().secret_name.as_deref(),
            Some("sessions-auth")
        );
        // The template's labels match the selector.
        let tl = spec.template.metadata.unwrap().labels.unwrap();
        assert!(sel.iter().all(|(k, v)| tl.get(k) == Some(v)));
    }

    #[test]
    fn a_user_password_secret_is_mounted_instead_of_the_generated_one() {
        let cc = cluster(&format!(
            "{SAMPLE}  auth: {{passwordSecret: {{name: mine, key: pw}}}}\n"
        ));
        let pod = shard_statefulset(&cc, 0, 2, &defaults())
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        let auth = pod.volumes.as_ref().unwrap()[0].secret.as_ref().unwrap();
        assert_eq!(auth.secret_name.as_deref(), Some("mine"));
        assert_eq!(auth.items.as_ref().unwrap()[0].key, "pw");
        assert_eq!(password_source(&cc), ("mine".into(), "pw".into()));
    }

    #[test]
    fn services_select_the_right_pods() {
        let cc = cluster(SAMPLE);
        let headless = shard_service(&cc, 1).spec.unwrap();
        assert_eq!(headless.cluster_ip.as_deref(), Some("None"));
        assert_eq!(
            headless
                .selector
                .unwrap()
                .get(labels::SHARD)
                .map(String::as_str),
            Some("1")
        );
        let client = client_service(&cc);
        assert_eq!(client.metadata.name.as_deref(), Some("sessions"));
        assert!(
            !client
                .spec
                .unwrap()
                .selector
                .unwrap()
                .contains_key(labels::SHARD)
        );
        assert_eq!(
            selector_string(&cc),
            "app.kubernetes.io/instance=sessions,app.kubernetes.io/name=tidecache,tidecache.io/cluster=sessions"
        );
    }

    #[test]
    fn building_is_deterministic() {
        let cc = cluster(SAMPLE);
        let a = serde_json::to_string(&shard_statefulset(&cc, 0, 2, &defaults())).unwrap();
        let b = serde_json::to_string(&shard_statefulset(&cc, 0, 2, &defaults())).unwrap();
        assert_eq!(a, b, "re-applying must change nothing");
    }

    #[test]
    fn replicas_may_go_one_at_a_time_and_primaries_never() {
        let cc = cluster(
            "apiVersion: tidecache.io/v1alpha1\nkind: CacheCluster\nmetadata: {name: c, namespace: ns}\nspec: {shards: 2, replicasPerShard: 1}",
        );
        let pdb = shard_pdb(&cc, 1);
        assert_eq!(pdb.metadata.name.as_deref(), Some("c-1"));
        let spec = pdb.spec.unwrap();
        // One replica: none needs to stay.
        assert_eq!(spec.min_available, Some(IntOrString::Int(0)));
        assert_eq!(spec.max_unavailable, None);
        let mut replicas = shard_labels(&cc, 1);
        replicas.insert(labels::ROLE.into(), "replica".into());
        assert_eq!(spec.selector.unwrap().match_labels.unwrap(), replicas);
        let pdb = primaries_pdb(&cc);
        assert_eq!(pdb.metadata.name.as_deref(), Some("c-primaries"));
        let spec = pdb.spec.unwrap();
        assert_eq!(spec.max_unavailable, Some(IntOrString::Int(0)));
        let mut primaries = cluster_labels(&cc);
        primaries.insert(labels::ROLE.into(), "primary".into());
        assert_eq!(spec.selector.unwrap().match_labels.unwrap(), primaries);
    }
}
