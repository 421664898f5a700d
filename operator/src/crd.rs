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
    printcolumn(name = "Shards", type_ = "integer", json_path = ".spec.shards"),
    printcolumn(
        name = "Replicas",
        type_ = "integer",
        json_path = ".spec.replicasPerShard",
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
pub struct CacheClusterSpec {
    /// How the cluster is sized. `Provisioned`: a fixed number of shards and a
    /// fixed node size. `Serverless` (limits instead of sizes, autoscaling) is
    /// reserved for a later release and refused for now.
    #[serde(default)]
    #[x_kube(validation = kube::core::Rule::new("self == 'Provisioned'").message("mode Serverless is not available yet; use Provisioned").reason(kube::core::Reason::FieldValueInvalid))]
    pub mode: Mode,

    /// Number of shards in Provisioned mode (1–500). Each shard is a primary
    /// and `replicasPerShard` replicas serving a share of the 16384 hash slots.
    /// A change on a running cluster moves slots live, by atomic slot
    /// migration: new shards receive a balanced share, removed shards are
    /// drained over all remaining ones before their pods are deleted.
    #[serde(default = "default_shards")]
    #[schemars(range(min = 1, max = 500))]
    pub shards: i32,

    /// Replicas per shard (0–5). Each follows its primary (full sync, then
    /// the write stream) and serves reads to clients that send `READONLY`;
    /// the most up-to-date one is promoted when the primary is lost, and a
    /// rolling change switches the primary over to one before restarting
    /// it. With 0, a restarted node comes back empty.
    #[serde(default)]
    #[schemars(range(min = 0, max = 5))]
    pub replicas_per_shard: i32,

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
}

fn default_shards() -> i32 {
    1
}

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

    /// Number of shards that exist (the scale subresource's replicas).
    #[serde(default)]
    pub current_shards: i32,

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
    /// restarted operator resumes (or restarts) this move before any other,
    /// and no new topology document is made meanwhile.
    Copying,
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
