//! What every part of the agent shares.

use std::path::PathBuf;
use std::sync::Arc;

use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::image::ImageMap;
use crate::objects::Objects;
use crate::runtime::Runtime;
use crate::tokens::Tokens;

pub struct Agent {
    pub client: Client,
    pub objects: Arc<Objects>,
    pub tokens: Tokens,
    pub runtime: Arc<Runtime>,
    pub images: ImageMap,
    /// Canonical, absolute.
    pub state_dir: PathBuf,
    /// The apiserver as pods reach it (`KUBERNETES_SERVICE_HOST/PORT`).
    pub master_host: String,
    pub master_port: u16,
    pub cluster_domain: String,
    /// Agent shutdown: every pod worker stops its containers.
    pub shutdown: CancellationToken,
}

impl Agent {
    pub fn pods_dir(&self) -> PathBuf {
        self.state_dir.join("pods")
    }
}
