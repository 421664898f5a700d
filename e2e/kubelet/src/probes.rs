//! Probe and lifecycle-hook actions (exec, httpGet, tcpSocket, sleep) and
//! the probe result threshold logic of the kubelet's prober worker.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{Container, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::image;
use crate::nsexec::ExecSpec;
use crate::runtime::Runtime;

/// The outcome of one probe or hook run, with the message the kubelet would
/// put in an `Unhealthy` or `Failed*Hook` event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure(String),
}

/// Where and how to run an exec action: inside a running container.
#[derive(Clone)]
pub struct ExecTarget {
    pub runtime: Arc<Runtime>,
    pub pid: i32,
    pub env: Arc<Vec<(String, String)>>,
    pub workdir: PathBuf,
    pub image_bin: PathBuf,
}

pub async fn run_exec(t: &ExecTarget, command: &[String], timeout: Duration) -> Outcome {
    let Some(cmd0) = command.first() else {
        return Outcome::Failure("exec action has no command".into());
    };
    let Some(program) = image::resolve_command(&t.image_bin, cmd0, &image::is_executable) else {
        return Outcome::Failure(format!(
            "exec: {cmd0:?}: executable file not found in image or $PATH"
        ));
    };
    let spec = ExecSpec {
        program,
        argv0: cmd0.clone(),
        args: command[1..].to_vec(),
        workdir: t.workdir.clone(),
        isolate: None,
        join_pid: Some(t.pid),
        die_with_parent: true,
    };
    match crate::runtime::run_captured(&t.runtime, &spec, &t.env, timeout).await {
        Ok((Some(e), _)) if e.code == 0 => Outcome::Success,
        Ok((Some(e), out)) => Outcome::Failure(if out.trim().is_empty() {
            format!("command {command:?} exited with {}", e.code)
        } else {
            out.trim_end().to_string()
        }),
        Ok((None, _)) => Outcome::Failure(format!(
            "command timed out: {command:?} timed out after {}s",
            timeout.as_secs()
        )),
        Err(e) => Outcome::Failure(format!("{e:#}")),
    }
}

/// A named or numbered container port.
pub fn resolve_port(port: &IntOrString, container: &Container) -> anyhow::Result<u16> {
    match port {
        IntOrString::Int(n) => u16::try_from(*n).context("invalid port"),
        IntOrString::String(s) => {
            if let Ok(n) = s.parse::<u16>() {
                return Ok(n);
            }
            container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(s.as_str()))
                .map(|p| p.container_port as u16)
                .with_context(|| {
                    format!("couldn't find port {s:?} in container {:?}", container.name)
                })
        }
    }
}

pub async fn run_tcp(host: &str, port: u16, timeout: Duration) -> Outcome {
    match tokio::time::timeout(timeout, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => Outcome::Success,
        Ok(Err(e)) => Outcome::Failure(format!("dial tcp {host}:{port}: {e}")),
        Err(_) => Outcome::Failure(format!("dial tcp {host}:{port}: i/o timeout")),
    }
}

/// An httpGet action against `host` (the pod IP unless the action names a
/// host). Success is a status in [200, 400), as for the kubelet.
pub async fn run_http(
    action: &HTTPGetAction,
    default_host: &str,
    container: &Container,
    timeout: Duration,
) -> Outcome {
    let port = match resolve_port(&action.port, container) {
        Ok(p) => p,
        Err(e) => return Outcome::Failure(format!("{e:#}")),
    };
    let host = action
        .host
        .as_deref()
        .filter(|h| !h.is_empty())
        .unwrap_or(default_host);
    if action
        .scheme
        .as_deref()
        .unwrap_or("HTTP")
        .eq_ignore_ascii_case("HTTPS")
    {
        return Outcome::Failure(
            "HTTPS probes are not supported by tidecache-kubelet (use HTTP or tcpSocket)".into(),
        );
    }
    match tokio::time::timeout(timeout, http_get(action, host, port)).await {
        Ok(Ok(code)) if (200..400).contains(&code) => Outcome::Success,
        Ok(Ok(code)) => Outcome::Failure(format!("HTTP probe failed with statuscode: {code}")),
        Ok(Err(e)) => Outcome::Failure(format!(
            "Get \"http://{host}:{port}{}\": {e:#}",
            action.path.as_deref().unwrap_or("/")
        )),
        Err(_) => Outcome::Failure(format!(
            "Get \"http://{host}:{port}{}\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)",
            action.path.as_deref().unwrap_or("/")
        )),
    }
}

/// Builds the request the kubelet's prober sends.
pub fn http_request(action: &HTTPGetAction, host: &str, port: u16) -> String {
    let mut path = action.path.clone().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let mut headers: Vec<(String, String)> = vec![
        ("Host".into(), format!("{host}:{port}")),
        ("User-Agent".into(), "kube-probe/1.34".into()),
        ("Accept".into(), "*/*".into()),
    ];
    for h in action.http_headers.iter().flatten() {
        match headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(&h.name))
        {
            Some(slot) => slot.1 = h.value.clone(),
            None => headers.push((h.name.clone(), h.value.clone())),
        }
    }
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    req
}

async fn http_get(action: &HTTPGetAction, host: &str, port: u16) -> anyhow::Result<u16> {
    let mut s = TcpStream::connect((host, port)).await?;
    s.write_all(http_request(action, host, port).as_bytes())
        .await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        let n = s.read(&mut chunk).await?;
        if n == 0 || buf.len() > 16 * 1024 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    parse_status_line(&buf)
}

pub fn parse_status_line(buf: &[u8]) -> anyhow::Result<u16> {
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_whitespace();
    match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/") => {
            code.parse().context("malformed HTTP status code")
        }
        _ => bail!("malformed HTTP response {:?}", line.trim_end()),
    }
}

/// Probe settings with the API's defaults.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub initial_delay: Duration,
    pub period: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
}

impl Timing {
    pub fn of(p: &Probe) -> Self {
        let secs =
            |v: Option<i32>, d: i32, min: i32| Duration::from_secs(v.unwrap_or(d).max(min) as u64);
        Self {
            initial_delay: secs(p.initial_delay_seconds, 0, 0),
            period: secs(p.period_seconds, 10, 1),
            timeout: secs(p.timeout_seconds, 1, 1),
            success_threshold: p.success_threshold.unwrap_or(1).max(1) as u32,
            failure_threshold: p.failure_threshold.unwrap_or(3).max(1) as u32,
        }
    }
}

/// Consecutive-result counting: the probe's result only changes after
/// `successThreshold` successes or `failureThreshold` failures in a row.
#[derive(Debug, Clone)]
pub struct Counter {
    success_threshold: u32,
    failure_threshold: u32,
    last: Option<bool>,
    run: u32,
}

impl Counter {
    pub fn new(t: &Timing) -> Self {
        Self {
            success_threshold: t.success_threshold,
            failure_threshold: t.failure_threshold,
            last: None,
            run: 0,
        }
    }

    /// Records one result; returns the probe's new result when a threshold
    /// is reached (`Some(false)` means: act on the failure).
    pub fn observe(&mut self, success: bool) -> Option<bool> {
        if self.last == Some(success) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(success);
            self.run = 1;
        }
        let threshold = if success {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        (self.run >= threshold).then_some(success)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerPort, HTTPHeader};

    fn timing(success: u32, failure: u32) -> Timing {
        Timing {
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn thresholds() {
        let mut c = Counter::new(&timing(1, 3));
        assert_eq!(c.observe(true), Some(true));
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), None);
        assert_eq!(c.observe(false), Some(false));
        assert_eq!(c.observe(false), Some(false));
        assert_eq!(c.observe(true), Some(true));

        let mut c = Counter::new(&timing(2, 1));
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(false), Some(false));
        assert_eq!(c.observe(true), None);
        assert_eq!(c.observe(true), Some(true));
    }

    #[test]
    fn defaults() {
        let t = Timing::of(&Probe::default());
        assert_eq!(t.period, Duration::from_secs(10));
        assert_eq!(t.timeout, Duration::from_secs(1));
        assert_eq!((t.success_threshold, t.failure_threshold), (1, 3));
    }

    #[test]
    fn ports() {
        let c = Container {
            name: "c".into(),
            ports: Some(vec![ContainerPort {
                name: Some("http".into()),
                container_port: 8080,
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(resolve_port(&IntOrString::Int(80), &c).unwrap(), 80);
        assert_eq!(
            resolve_port(&IntOrString::String("http".into()), &c).unwrap(),
            8080
        );
        assert_eq!(
            resolve_port(&IntOrString::String("9090".into()), &c).unwrap(),
            9090
        );
        assert!(resolve_port(&IntOrString::String("nope".into()), &c).is_err());
    }

    #[test]
    fn http_request_and_status() {
        let a = HTTPGetAction {
            path: Some("healthz?x=1".into()),
            http_headers: Some(vec![
                HTTPHeader {
                    name: "X-Test".into(),
                    value: "1".into(),
                },
                HTTPHeader {
                    name: "host".into(),
                    value: "example".into(),
                },
            ]),
            port: IntOrString::Int(8080),
            ..Default::default()
        };
        let r = http_request(&a, "10.244.1.2", 8080);
        assert!(r.starts_with("GET /healthz?x=1 HTTP/1.1\r\n"), "{r}");
        assert!(r.contains("Host: example\r\n"));
        assert!(r.contains("User-Agent: kube-probe/1.34\r\n"));
        assert!(r.contains("X-Test: 1\r\n"));
        assert!(r.ends_with("\r\n\r\n"));
        assert_eq!(
            parse_status_line(b"HTTP/1.1 204 No Content\r\n").unwrap(),
            204
        );
        assert!(parse_status_line(b"garbage\r\n").is_err());
    }

    #[tokio::test]
    async fn http_and_tcp_against_a_local_server() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /ok ") {
                    200
                } else {
                    503
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        let c = Container::default();
        let action = |path: &str| HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::Int(port as i32),
            ..Default::default()
        };
        let t = Duration::from_secs(2);
        assert_eq!(
            run_http(&action("/ok"), "127.0.0.1", &c, t).await,
            Outcome::Success
        );
        assert_eq!(
            run_http(&action("/bad"), "127.0.0.1", &c, t).await,
            Outcome::Failure("HTTP probe failed with statuscode: 503".into())
        );
        assert_eq!(run_tcp("127.0.0.1", port, t).await, Outcome::Success);
    }
}
