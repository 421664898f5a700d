//! The `CacheCluster` custom resource (group `tidecache.io`, version
//! `v1alpha1`). Every field's doc comment becomes its `kubectl explain` text.

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// A Redis-compatible cache cluster: shards of a primary and replicas, the
/// 16384 hash slots spread over them, run and repaired by the operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidecache.io",
    version = "v1alpha1",
    kind = "CacheCluster",
    namespaced,
    status = "CacheClusterStatus",
    shortname = "cc",
    category = "tidecache",
    doc = "A Redis-compatible cache cluster managed by Tidecache.",
    scale = r#"{"specReplicasPath":".spec.shards","statusReplicasPath":".status.currentShards","labelSelectorPath":".status.selector"}"#,
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "Shards",
        type_ = "integer",
        json_path = ".status.currentShards"
    ),
    printcolumn(
        name = "Memory",
        type_ = "string",
        json_path = ".status.serverless.usage.memory",
        description = "data used against the storage limit (Serverless)"
    ),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".status.replicasPerShard",
        description = "replicas per shard"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Epoch",
        type_ = "integer",
        json_path = ".status.epoch",
        priority = "1"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new(SERVERLESS_STORAGE_RULE).message("serverless.limits.dataStorage.maximum is below one node's data (node.maxMemory, else 75% of the node's memory limit, 768Mi by default)").reason(kube::core::Reason::FieldValueInvalid))]
#[x_kube(validation = kube::core::Rule::new("!has(self.restoreFrom) || (has(oldSelf.restoreFrom) && self.restoreFrom == oldSelf.restoreFrom)").message("restoreFrom is set when the cluster is created, never added or changed later (it would replace the cluster's data)").reason(kube::core::Reason::FieldValueForbidden))]
#[x_kube(validation = kube::core::Rule::new(SERVERLESS_COMPUTE_RULE).message("serverless.limits.compute.maximum is below one shard's CPU ((1 + replicasPerShard) times the node's CPU limit, 1 by default)").reason(kube::core::Reason::FieldValueInvalid))]
pub struct CacheClusterSpec {
    /// How the cluster is sized. `Provisioned`: a fixed number of shards
    /// (`shards`) and a fixed node size. `Serverless`: limits instead of
    /// sizes (`serverless`); the operator chooses the shard count within
    /// them from the nodes' memory and CPU, and records it in
    /// `status.serverless` (never in the spec, so GitOps tools applying the
    /// same manifest never fight it).
    #[serde(default)]
    pub mode: Mode,

    /// Number of shards in Provisioned mode (1–500); ignored in Serverless
    /// mode. Each shard is a primary and `replicasPerShard` replicas serving
    /// a share of the 16384 hash slots. A change on a running cluster moves
    /// slots live, by atomic slot migration: new shards receive a balanced
    /// share, removed shards are drained over all remaining ones before
    /// their pods are deleted. The scale subresource sets it, so a
    /// HorizontalPodAutoscaler or KEDA can drive a Provisioned cluster.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 500))]
    pub shards: i32,

    /// Replicas per shard (0–5); defaults to 0 in Provisioned mode and to 1
    /// in Serverless mode (which, like ElastiCache Serverless, always
    /// replicates). Each follows its primary (full sync, then the write
    /// stream) and serves reads to clients that send `READONLY`; the most
    /// up-to-date one is promoted when the primary is lost, and a rolling
    /// change switches the primary over to one before restarting it. With
    /// 0, a restarted node comes back empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_shard: Option<i32>,

    /// Serverless mode's limits and targets (ElastiCache's
    /// `CacheUsageLimits`). Defaults apply when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessSpec>,

    /// The cache-node image. Defaults to the image matching the operator's
    /// version. A change rolls the pods one at a time, replicas first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,

    /// Image pull policy of the cache-node containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Size and behaviour of every cache node.
    #[serde(default)]
    pub node: NodeSpec,

    /// Client authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,

    /// Snapshots: the S3-compatible storage they are written to. Needed by
    /// `CacheSnapshot`s of this cluster and by `restoreFrom`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotSpec>,

    /// Seeds the cluster, when it is first created, from a snapshot in its
    /// snapshot storage, whatever the shard count the snapshot was taken
    /// at: each shard keeps the keys of its own slots. Until every shard has
    /// loaded its data the cluster is `Restoring` and its nodes answer
    /// `LOADING`; a damaged, missing or foreign object fails the restore
    /// (phase `Failed`, the `Restored` condition says why) and no data is
    /// served. Read once: changing it later does nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_from: Option<RestoreFrom>,

    /// Hibernation: `true` takes a snapshot (it needs
    /// `snapshots.storage`), then removes the pods and keeps the resource
    /// (phase `Paused`: no compute is used, the data is in the storage);
    /// `false` again brings the pods back and restores the snapshot into
    /// them (phase `Restoring`, then `Ready`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub paused: bool,
}

/// Where snapshots are stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSpec {
    pub storage: SnapshotStorage,

    /// When snapshots are taken: a cron expression in UTC, five fields
    /// (`0 3 * * *`: daily at 03:00) or six with seconds first. Each takes a
    /// `CacheSnapshot` named `<cluster>-<UTC time>`, owned by the cluster.
    /// Instants missed while the operator was down make one snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,

    /// How long scheduled snapshots are kept. Pruning deletes their
    /// `CacheSnapshot`s, and with them their objects; the newest completed
    /// one is always kept. On-demand and final snapshots are never pruned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<SnapshotRetention>,

    /// Whether deleting the cluster first takes a final snapshot
    /// (`<cluster>-final-<id>`, not owned by the cluster, so it outlives
    /// it): the deletion waits for it through a finalizer. Default `true`;
    /// `false` deletes at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_snapshot: Option<bool>,
}

impl SnapshotSpec {
    pub fn takes_final_snapshot(&self) -> bool {
        self.final_snapshot.unwrap_or(true)
    }
}

/// Retention of scheduled snapshots: by age, by count, or both (a snapshot
/// goes when either says so).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotRetention {
    /// Days a scheduled snapshot is kept (1–35, as ElastiCache allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 35))]
    pub days: Option<u32>,
    /// Scheduled snapshots kept, newest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<u32>,
}

/// An S3-compatible bucket. Credentials and the encryption key come from
/// Secrets in the cluster's namespace; only the operator and the cluster's
/// node pods read them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotStorage {
    /// `s3://bucket` or `s3://bucket/prefix`. Objects go under
    /// `<prefix>/<namespace>/<cluster>/<snapshot id>/`.
    #[schemars(regex(pattern = r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$"))]
    pub url: String,

    /// An S3-compatible endpoint, e.g. `http://garage.storage:3900`; AWS
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// The region requests are signed for (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,

    /// Path-style requests (`endpoint/bucket/key`), what S3-compatible
    /// servers expect (default `true`); `false` for virtual-hosted style.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,

    /// A Secret with the keys `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`. Without it, the node pods' environment (an
    /// IAM role for service accounts, for instance) decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<String>,

    /// zstd level (1–19) objects are compressed at; 0 (the default) stores
    /// plain RDB files, which redis-server reads as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 19))]
    pub compression_level: Option<i32>,

    /// A Secret key holding the AES-256-GCM key objects are encrypted with
    /// (32 bytes, 64 hex digits or base64 of 32 bytes). Restores need the
    /// same key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_key_secret: Option<SecretKeyRef>,
}

impl SnapshotStorage {
    /// The suffix of the objects nodes write with these settings.
    pub fn object_suffix(&self) -> &'static str {
        match (
            self.compression_level.unwrap_or(0) > 0,
            self.encryption_key_secret.is_some(),
        ) {
            (false, false) => ".rdb",
            (true, false) => ".rdb.zst",
            (false, true) => ".rdb.sealed",
            (true, true) => ".rdb.zst.sealed",
        }
    }
}

/// What a new cluster is seeded from: exactly one of the three.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("(has(self.snapshot) ? 1 : 0) + (has(self.manifest) ? 1 : 0) + (has(self.objects) && size(self.objects) > 0 ? 1 : 0) == 1").message("restoreFrom needs exactly one of snapshot, manifest and objects").reason(kube::core::Reason::FieldValueInvalid))]
pub struct RestoreFrom {
    /// A completed `CacheSnapshot` in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
    /// The path of a snapshot's `manifest.json` in the snapshot storage
    /// (below its prefix), e.g. of a snapshot whose `CacheSnapshot` was
    /// deleted, or of another cluster's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// Plain RDB files in the snapshot storage (below its prefix), e.g.
    /// redis-server's `dump.rdb` or an ElastiCache export; every key of
    /// every file is loaded into the shard owning its slot.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
}

/// An on-demand snapshot of a `CacheCluster`: every shard's primary
/// writes its slots to the cluster's snapshot storage through a fork-less
/// capture, while clients are served; a manifest, written last, lists the
/// objects, so a snapshot without a manifest is incomplete by
/// construction.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "tidecache.io",
    version = "v1alpha1",
    kind = "CacheSnapshot",
    namespaced,
    status = "CacheSnapshotStatus",
    shortname = "csnap",
    category = "tidecache",
    doc = "A snapshot of a Tidecache CacheCluster in its snapshot storage.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.cluster"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Keys", type_ = "integer", json_path = ".status.keys"),
    printcolumn(name = "Size", type_ = "integer", json_path = ".status.size"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct CacheSnapshotSpec {
    /// The `CacheCluster` (same namespace) to snapshot. It must have
    /// `spec.snapshots.storage`.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = kube::core::Rule::new("self == oldSelf").message("cluster is immutable").reason(kube::core::Reason::FieldValueInvalid))]
    pub cluster: String,
}

/// How a snapshot stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheSnapshotStatus {
    /// `Pending` (waiting for the cluster to be Ready), `Running`,
    /// `Completed` or `Failed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// The snapshot's id: the directory of its objects, and what each
    /// object's metadata names (a restore refuses objects of another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// The manifest's path in the storage, once written (then `Completed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    /// One object per shard.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<SnapshotObject>,
    /// Keys in the snapshot.
    #[serde(default)]
    pub keys: u64,
    /// Bytes stored (after compression and encryption).
    #[serde(default)]
    pub size: u64,
    /// The topology epoch the snapshot was taken at.
    #[serde(default)]
    pub epoch: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_time: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_time: Option<Time>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The storage its objects are in, as the cluster had it: deleting the
    /// `CacheSnapshot` deletes them there, even once the cluster is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<SnapshotStorage>,
}

/// One shard's object.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotObject {
    pub shard: String,
    /// The object's path in the storage (below its prefix).
    pub object: String,
    /// The slot ranges it holds, e.g. `0-5460`.
    pub slots: Vec<String>,
    pub keys: u64,
    /// Bytes of the RDB stream, and of the object as stored.
    pub rdb_bytes: u64,
    pub stored_bytes: u64,
    /// The RDB stream's CRC-64 (its last 8 bytes), hex.
    pub crc64: String,
}

/// CEL: in Serverless mode, the data storage maximum holds at least one
/// node's data.
const SERVERLESS_STORAGE_RULE: &str = "self.mode != 'Serverless' || !has(self.serverless) || !has(self.serverless.limits) || !has(self.serverless.limits.dataStorage) || !has(self.serverless.limits.dataStorage.maximum) || quantity(string(self.serverless.limits.dataStorage.maximum)).asApproximateFloat() >= (has(self.node) && has(self.node.maxMemory) ? quantity(string(self.node.maxMemory)).asApproximateFloat() : (has(self.node) && has(self.node.resources) && has(self.node.resources.limits) && 'memory' in self.node.resources.limits ? 0.75 * quantity(string(self.node.resources.limits['memory'])).asApproximateFloat() : 805306368.0))";

/// CEL: in Serverless mode, the compute maximum pays for at least one shard.
const SERVERLESS_COMPUTE_RULE: &str = "self.mode != 'Serverless' || !has(self.serverless) || !has(self.serverless.limits) || !has(self.serverless.limits.compute) || !has(self.serverless.limits.compute.maximum) || quantity(string(self.serverless.limits.compute.maximum)).asApproximateFloat() >= (1.0 + double(has(self.replicasPerShard) ? self.replicasPerShard : 1)) * (has(self.node) && has(self.node.resources) && has(self.node.resources.limits) && 'cpu' in self.node.resources.limits ? quantity(string(self.node.resources.limits['cpu'])).asApproximateFloat() : 1.0)";

fn default_shards() -> i32 {
    1
}

impl CacheClusterSpec {
    /// Replicas per shard, with the mode's default.
    pub fn replicas(&self) -> i32 {
        self.replicas_per_shard.unwrap_or(match self.mode {
            Mode::Provisioned => 0,
            Mode::Serverless => 1,
        })
    }

    /// Each cache node's resources: the spec's, else in Serverless mode the
    /// default unit of scale (1 CPU, 1 GiB, of which 768 MiB data).
    pub fn node_resources(&self) -> Option<ResourceRequirements> {
        if self.node.resources.is_some() || self.mode != Mode::Serverless {
            return self.node.resources.clone();
        }
        let size = std::collections::BTreeMap::from([
            (
                "cpu".to_owned(),
                Quantity(DEFAULT_SERVERLESS_NODE_CPU.into()),
            ),
            (
                "memory".to_owned(),
                Quantity(DEFAULT_SERVERLESS_NODE_MEMORY.into()),
            ),
        ]);
        Some(ResourceRequirements {
            limits: Some(size.clone()),
            requests: Some(size),
            ..ResourceRequirements::default()
        })
    }

    /// Serverless settings, with defaults for what is absent.
    pub fn serverless(&self) -> ServerlessSpec {
        self.serverless.clone().unwrap_or_default()
    }
}

/// A Serverless node's CPU when `node.resources` is absent.
pub const DEFAULT_SERVERLESS_NODE_CPU: &str = "1";
/// A Serverless node's memory when `node.resources` is absent.
pub const DEFAULT_SERVERLESS_NODE_MEMORY: &str = "1Gi";

/// Serverless mode: limits, not sizes. The unit of scale is a shard of
/// `node.resources` (a primary and its replicas); the operator keeps the
/// shard count where the nodes' memory and CPU meet the targets, within the
/// limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessSpec {
    /// The bounds the cluster scales within.
    #[serde(default)]
    pub limits: UsageLimits,

    /// Memory utilisation (data against each primary's `maxMemory`, in
    /// percent, 10–95) the operator aims at: above it for
    /// `scaleOutWindowSeconds` it adds shards, well below it for
    /// `scaleInWindowSeconds` it removes one. Default 70.
    #[serde(default = "default_target")]
    #[schemars(range(min = 10, max = 95))]
    pub target_memory_percent: i32,

    /// CPU utilisation (each primary's CPU time against its CPU limit, in
    /// percent, 10–95) the operator aims at. Default 70.
    #[serde(default = "default_target")]
    #[schemars(range(min = 10, max = 95))]
    pub target_cpu_percent: i32,

    /// How long the load must stay above a target before shards are added
    /// (1–600 s). Default 5: a spike shorter than this adds nothing.
    #[serde(default = "default_scale_out_window")]
    #[schemars(range(min = 1, max = 600))]
    pub scale_out_window_seconds: i32,

    /// How long the load must stay well below the targets before a shard is
    /// removed, one at a time (10–86400 s). Default 300.
    #[serde(default = "default_scale_in_window")]
    #[schemars(range(min = 10, max = 86400))]
    pub scale_in_window_seconds: i32,

    /// Warm spare shards (0–4): shards whose pods run owning no slots, so
    /// that a scale-out is only a slot move onto a spare, which is then
    /// replenished. Each costs a shard's pods. A scale-in drains a shard
    /// into a spare. None is kept at the shard maximum. Default 0.
    #[serde(default)]
    #[schemars(range(min = 0, max = 4))]
    pub spare_shards: i32,
}

fn default_target() -> i32 {
    70
}

fn default_scale_out_window() -> i32 {
    5
}

fn default_scale_in_window() -> i32 {
    300
}

impl Default for ServerlessSpec {
    fn default() -> Self {
        ServerlessSpec {
            limits: UsageLimits::default(),
            target_memory_percent: default_target(),
            target_cpu_percent: default_target(),
            scale_out_window_seconds: default_scale_out_window(),
            scale_in_window_seconds: default_scale_in_window(),
            spare_shards: 0,
        }
    }
}

/// The cluster's usage limits, as ElastiCache's `CacheUsageLimits`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageLimits {
    /// Data the cluster stores (bytes, e.g. `1Gi`–`64Gi`), counted once
    /// (not per replica). The minimum keeps enough shards for it even when
    /// idle; at the maximum, nodes evict (keys with a TTL first under the
    /// default `volatile-first` policy). Default maximum 64Gi.
    #[serde(default)]
    pub data_storage: QuantityRange,

    /// CPU of all the cluster's cache-node pods (cores, e.g. `"2"`–`"16"`):
    /// a shard costs `(1 + replicasPerShard)` times a node's CPU. At the
    /// maximum, nodes keep serving, slower. Default maximum 16.
    #[serde(default)]
    pub compute: QuantityRange,
}

/// A minimum and a maximum.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = kube::core::Rule::new("!has(self.minimum) || !has(self.maximum) || quantity(string(self.minimum)).compareTo(quantity(string(self.maximum))) <= 0").message("minimum must not exceed maximum").reason(kube::core::Reason::FieldValueInvalid))]
pub struct QuantityRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maximum: Option<Quantity>,
}

/// The default data storage maximum.
pub const DEFAULT_DATA_STORAGE_MAXIMUM: &str = "64Gi";
/// The default compute maximum (cores).
pub const DEFAULT_COMPUTE_MAXIMUM: &str = "16";

/// How a cluster is sized.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
pub enum Mode {
    #[default]
    Provisioned,
    Serverless,
}

/// When the kubelet pulls the image.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Size and behaviour of every cache node.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    /// CPU and memory requests and limits of each cache-node container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Memory for data on each node (the node's `maxmemory`). Defaults to 75%
    /// of the container's memory limit, or no limit when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory: Option<Quantity>,

    /// What a node does at `maxMemory` (Redis's `maxmemory-policy`).
    /// `volatile-first` (the default, what ElastiCache Serverless does):
    /// evict keys with a TTL first, soonest deadline first, then any key by
    /// LRU. `noeviction`: writes that would grow memory fail with `OOM`. The
    /// others are Redis's: `allkeys-lru`, `allkeys-lfu`, `allkeys-random`,
    /// `volatile-lru`, `volatile-lfu`, `volatile-random`, `volatile-ttl`.
    #[serde(default)]
    pub max_memory_policy: MaxMemoryPolicy,
}

/// What a node does at its memory limit.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum MaxMemoryPolicy {
    #[default]
    VolatileFirst,
    #[serde(rename = "noeviction")]
    NoEviction,
    AllkeysLru,
    AllkeysLfu,
    AllkeysRandom,
    VolatileLru,
    VolatileLfu,
    VolatileRandom,
    VolatileTtl,
}

impl MaxMemoryPolicy {
    /// The node's `--maxmemory-policy` value.
    pub fn as_str(self) -> &'static str {
        match self {
            MaxMemoryPolicy::VolatileFirst => "volatile-first",
            MaxMemoryPolicy::NoEviction => "noeviction",
            MaxMemoryPolicy::AllkeysLru => "allkeys-lru",
            MaxMemoryPolicy::AllkeysLfu => "allkeys-lfu",
            MaxMemoryPolicy::AllkeysRandom => "allkeys-random",
            MaxMemoryPolicy::VolatileLru => "volatile-lru",
            MaxMemoryPolicy::VolatileLfu => "volatile-lfu",
            MaxMemoryPolicy::VolatileRandom => "volatile-random",
            MaxMemoryPolicy::VolatileTtl => "volatile-ttl",
        }
    }
}

/// Client authentication.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// A Secret in the cluster's namespace holding the password of the
    /// `default` user. When absent the operator generates one in
    /// `<cluster>-auth` (key `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret: Option<SecretKeyRef>,
}

/// A key of a Secret in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Key within the Secret.
    #[serde(default = "default_password_key")]
    pub key: String,
}

pub fn default_password_key() -> String {
    "password".into()
}

/// What the operator observes and decides.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CacheClusterStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Pending` (objects being created), `Ready` (every slot served),
    /// `Degraded` (some slots not served), `Failed` (the spec cannot be run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,

    /// Standard conditions: `Ready`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// Epoch of the current topology document; grows with every change.
    #[serde(default)]
    pub epoch: u64,

    /// Shards, their slot ranges and nodes: the topology the operator pushes
    /// to every node.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardStatus>,

    /// Number of shards that serve data (the scale subresource's
    /// replicas); warm spares are not counted.
    #[serde(default)]
    pub current_shards: i32,

    /// Replicas per shard, as the spec asks or its mode's default.
    #[serde(default)]
    pub replicas_per_shard: i32,

    /// Label selector of the cluster's pods (for the scale subresource).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,

    /// Where clients connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoints: Option<Endpoints>,

    /// The slot moves under way to reach the spec's shard count, with the
    /// progress of each: a restarted operator continues from here. Written
    /// as `null` when none (status is merge-patched: an absent field would
    /// keep the last rebalance).
    #[serde(default)]
    pub rebalance: Option<RebalanceStatus>,

    /// Serverless mode: the shard count the autoscaler chose, the usage it
    /// chose it on and its recent decisions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serverless: Option<ServerlessStatus>,

    /// The seeding from `spec.restoreFrom`, or the restore that ends a
    /// hibernation: its progress, then its outcome. Written as `null` when
    /// cleared (status is merge-patched).
    #[serde(default)]
    pub restore: Option<RestoreStatus>,

    /// Hibernation (`spec.paused`): `Snapshotting`, `Paused`, `Resuming`
    /// or `Failed`, and the snapshot it keeps the data in. `null` when the
    /// cluster runs.
    #[serde(default)]
    pub hibernation: Option<HibernationStatus>,

    /// The schedule's last snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<SnapshotsStatus>,
}

/// Scheduled snapshots.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotsStatus {
    /// The scheduled instant the last snapshot was taken for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_scheduled: Option<Time>,
    /// Its `CacheSnapshot`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_snapshot: Option<String>,
}

/// Where a hibernation stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HibernationStatus {
    pub phase: String,
    /// The `CacheSnapshot` holding the data while paused.
    pub snapshot: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How the seeding from `spec.restoreFrom` stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreStatus {
    /// `Restoring`, `Completed` or `Failed`.
    pub phase: String,
    /// The id the nodes know this restore by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The objects every shard reads (keeping its own slots' keys).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<String>,
    /// The snapshot id the objects must name (none for plain RDB files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// Keys loaded, over all shards, once completed.
    #[serde(default)]
    pub keys: u64,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// What the autoscaler decided and why.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerlessStatus {
    /// The shard count the autoscaler chose (the cluster moves slots to get
    /// there): the spec's `shards` plays no part in Serverless mode.
    pub shards: i32,
    /// The shard counts the limits allow.
    pub min_shards: i32,
    pub max_shards: i32,
    /// Usage at the newest sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The newest decisions that changed something (at most 10), oldest
    /// first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<ScaleDecision>,
    /// A `Rebalance` decision waits for its plan of moves (cleared when the
    /// moves are planned).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalance_requested: bool,
    /// Warm spare shards running now (owning no slots).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub spare_shards: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}

/// The cluster's usage, summed over its primaries.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Data used against the data the shards can hold, e.g. `312Mi/1536Mi (20%)`.
    pub memory: String,
    pub memory_bytes: u64,
    pub memory_limit_bytes: u64,
    /// CPU used against the primaries' CPU, e.g. `450m/2000m (22%)`.
    pub cpu: String,
    pub cpu_millicores: u64,
    pub cpu_limit_millicores: u64,
    /// Commands per second.
    pub ops_per_second: u64,
}

/// One autoscaling decision.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScaleDecision {
    pub time: Time,
    /// `ScaleOut`, `ScaleIn` or `Rebalance`.
    pub action: String,
    pub from: i32,
    pub to: i32,
    /// Why, with the inputs: e.g. `memory 78% (target 70%), CPU 20% (target 70%) for 5 s: 4 shards needed`.
    pub reason: String,
}

/// A rebalance in progress.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// The shard count the moves lead to.
    pub shards: i32,
    /// The moves, run one at a time in order.
    pub moves: Vec<MoveStatus>,
}

/// One move of a rebalance: slot ranges from one shard to another, run as
/// an atomic slot migration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MoveStatus {
    /// Shard the slots leave.
    pub from: String,
    /// Shard the slots go to.
    pub to: String,
    /// The slot ranges, e.g. `0-1364`.
    pub slots: Vec<String>,
    /// Keys in those slots when the move was planned.
    #[serde(default)]
    pub keys: u64,
    /// `Pending`, `Copying` (the migration runs) or `Done`.
    pub state: MoveState,
    /// The epoch the move's handoff takes, reserved here before the
    /// migration starts; 0 while pending.
    #[serde(default)]
    pub epoch: u64,
    /// Attempts started (a failed migration is retried under a new epoch).
    #[serde(default)]
    pub attempts: u32,
    /// Why the last attempt failed, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// After a failed attempt, the move starts again no earlier than this.
    /// The wait doubles with each attempt (3 s, 6 s, 12 s, ... at most
    /// 5 minutes), so a move that keeps failing (a target at `maxmemory`)
    /// does not copy its slots over and over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<Time>,
}

/// Where one move stands. The planner, the operator's status and the e2e
/// tests all read this one type.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum MoveState {
    /// Not started (or failed and waiting to run again); the source owns
    /// the slots.
    #[default]
    Pending,
    /// The source streams the slots to the target and still owns them; a
    /// restarted operator resumes (or restarts) it. Moves of disjoint
    /// shards copy at once; no topology document goes above its epoch
    /// meanwhile.
    Copying,
    /// Handed over on the nodes while another move still copies: the
    /// target serves the slots, and the status records it once no move
    /// copies.
    Committed,
    /// The target owns the slots.
    Done,
}

/// One shard in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ShardStatus {
    /// The shard's name, also its StatefulSet's.
    pub name: String,
    /// Slot ranges the shard owns, e.g. `0-5461`.
    pub slots: Vec<String>,
    /// The node serving writes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<NodeStatus>,
    /// Nodes replicating the primary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<NodeStatus>,
}

/// A node in status.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// The pod running the node.
    pub pod: String,
    /// `ip:port` clients reach it at; empty until the pod has an IP.
    #[serde(default)]
    pub address: String,
}

/// Client endpoints.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Endpoints {
    /// `host:port` of the client Service; cluster-aware clients discover every node from it.
    pub primary: String,
}
