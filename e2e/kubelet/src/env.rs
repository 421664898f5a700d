//! A container's environment, as the kubelet's `makeEnvironmentVariables`
//! builds it: service link variables, `envFrom`, then `env` in order with
//! `$(VAR)` expansion and `valueFrom` sources; and the runtime's defaults
//! (`HOSTNAME`, `PATH`) underneath.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Container, Secret, Service};

use crate::expand;
use crate::fieldpath::{self, FieldCtx};
use crate::image::DEFAULT_PATH;
use crate::quantity::{self, Allocatable};

/// The ConfigMaps and Secrets a container refers to, fetched beforehand
/// (`None`: not found).
#[derive(Default)]
pub struct Lookup {
    pub config_maps: HashMap<String, Option<Arc<ConfigMap>>>,
    pub secrets: HashMap<String, Option<Arc<Secret>>>,
}

/// Names of the ConfigMaps and Secrets that a container's env refers to.
pub fn referenced_objects(c: &Container) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cms = BTreeSet::new();
    let mut secrets = BTreeSet::new();
    for ef in c.env_from.iter().flatten() {
        if let Some(r) = &ef.config_map_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &ef.secret_ref {
            secrets.insert(r.name.clone());
        }
    }
    for e in c.env.iter().flatten() {
        let Some(vf) = &e.value_from else { continue };
        if let Some(r) = &vf.config_map_key_ref {
            cms.insert(r.name.clone());
        }
        if let Some(r) = &vf.secret_key_ref {
            secrets.insert(r.name.clone());
        }
    }
    (cms, secrets)
}

pub struct EnvInputs<'a> {
    pub field: FieldCtx<'a>,
    pub alloc: Allocatable<'a>,
    /// Service link variables ([`service_env`]).
    pub service_env: &'a [(String, String)],
    pub lookup: &'a Lookup,
}

/// An insertion-ordered map: the container sees variables in declaration
/// order, and a later definition replaces an earlier one in place.
#[derive(Default)]
struct OrderedEnv {
    vars: Vec<(String, String)>,
    index: HashMap<String, usize>,
}

impl OrderedEnv {
    fn set(&mut self, k: String, v: String) {
        match self.index.get(&k) {
            Some(&i) => self.vars[i].1 = v,
            None => {
                self.index.insert(k.clone(), self.vars.len());
                self.vars.push((k, v));
            }
        }
    }
    fn get(&self, k: &str) -> Option<&str> {
        self.index.get(k).map(|&i| self.vars[i].1.as_str())
    }
}

/// The kubelet-made variables of a container. The error is the message of a
/// `CreateContainerConfigError` (the container is retried later).
pub fn container_env(c: &Container, inp: &EnvInputs<'_>) -> Result<Vec<(String, String)>, String> {
    let ns = inp
        .field
        .pod
        .metadata
        .namespace
        .as_deref()
        .unwrap_or_default();
    let mut tmp = OrderedEnv::default();

    // envFrom first; env overrides it.
    for ef in c.env_from.iter().flatten() {
        let prefix = ef.prefix.as_deref().unwrap_or_default();
        if let Some(r) = &ef.config_map_ref {
            match inp.lookup.config_maps.get(&r.name).cloned().flatten() {
                Some(cm) => {
                    for (k, v) in cm.data.iter().flatten() {
                        let k = format!("{prefix}{k}");
                        if valid_env_name(&k) {
                            tmp.set(k, v.clone());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("configmap {:?} not found", r.name)),
            }
        }
        if let Some(r) = &ef.secret_ref {
            match inp.lookup.secrets.get(&r.name).cloned().flatten() {
                Some(s) => {
                    for (k, v) in s.data.iter().flatten() {
                        let k = format!("{prefix}{k}");
                        if valid_env_name(&k) {
                            tmp.set(k, String::from_utf8_lossy(&v.0).into_owned());
                        }
                    }
                }
                None if r.optional == Some(true) => {}
                None => return Err(format!("secret {:?} not found", r.name)),
            }
        }
    }

    let service: HashMap<&str, &str> = inp
        .service_env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();

    for e in c.env.iter().flatten() {
        let value = e.value.clone().unwrap_or_default();
        let runtime_val = if !value.is_empty() {
            // The sources of `$(VAR)` are the variables declared so far and
            // the service variables.
            expand::expand_with(&value, |name| {
                tmp.get(name).or_else(|| service.get(name).copied())
            })
        } else if let Some(vf) = &e.value_from {
            if let Some(f) = &vf.field_ref {
                fieldpath::env_value(&inp.field, &f.field_path).map_err(|e| e.to_string())?
            } else if let Some(r) = &vf.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(name) if !name.is_empty() && name != c.name => {
                        find_container(inp, name)
                            .ok_or_else(|| format!("container {name:?} not found in pod"))?
                    }
                    _ => c,
                };
                quantity::container_resource_value(
                    target,
                    &r.resource,
                    r.divisor.as_ref(),
                    &inp.alloc,
                )
                .map_err(|e| e.to_string())?
            } else if let Some(r) = &vf.config_map_key_ref {
                let optional = r.optional == Some(true);
                match inp.lookup.config_maps.get(&r.name).cloned().flatten() {
                    None if optional => continue,
                    None => return Err(format!("configmap {:?} not found", r.name)),
                    Some(cm) => match cm.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => v.clone(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    },
                }
            } else if let Some(r) = &vf.secret_key_ref {
                let optional = r.optional == Some(true);
                match inp.lookup.secrets.get(&r.name).cloned().flatten() {
                    None if optional => continue,
                    None => return Err(format!("secret {:?} not found", r.name)),
                    Some(s) => match s.data.as_ref().and_then(|d| d.get(&r.key)) {
                        Some(v) => String::from_utf8_lossy(&v.0).into_owned(),
                        None if optional => continue,
                        None => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ));
                        }
                    },
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        tmp.set(e.name.clone(), runtime_val);
    }

    // Service variables the container did not define itself come last.
    let mut out = tmp.vars;
    let defined: BTreeSet<String> = out.iter().map(|(k, _)| k.clone()).collect();
    out.extend(
        inp.service_env
            .iter()
            .filter(|(k, _)| !defined.contains(k))
            .cloned(),
    );
    Ok(out)
}

fn find_container<'a>(inp: &EnvInputs<'a>, name: &str) -> Option<&'a Container> {
    let spec = inp.field.pod.spec.as_ref()?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
}

/// Environment variable names the kubelet accepts from `envFrom` (any
/// printable ASCII except '=', since RelaxedEnvironmentVariableValidation).
fn valid_env_name(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'=')
}

/// The apiserver's address as pods see it (the `kubernetes` Service).
pub struct Master<'a> {
    pub host: &'a str,
    pub port: u16,
}

/// Service link variables (`envvars.FromServices`): the master service's
/// always, and those of the pod's namespace when `enableServiceLinks`.
pub fn service_env(
    services: &[Arc<Service>],
    pod_ns: &str,
    enable_links: bool,
    master: &Master<'_>,
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut sorted: Vec<&Service> = services
        .iter()
        .map(|s| s.as_ref())
        .filter(|s| enable_links && s.metadata.namespace.as_deref() == Some(pod_ns))
        // The master service is synthesised below from the agent's flags.
        .filter(|s| s.metadata.name.as_deref() != Some("kubernetes"))
        .collect();
    sorted.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let master_port = k8s_openapi::api::core::v1::ServicePort {
        name: Some("https".into()),
        port: master.port as i32,
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    out.extend(service_vars("kubernetes", master.host, &[master_port]));
    for s in sorted {
        let Some(spec) = &s.spec else { continue };
        let ip = spec.cluster_ip.as_deref().unwrap_or_default();
        if ip.is_empty() || ip == "None" {
            continue;
        }
        let ports = spec.ports.as_deref().unwrap_or_default();
        out.extend(service_vars(
            s.metadata.name.as_deref().unwrap_or_default(),
            ip,
            ports,
        ));
    }
    out
}

fn service_vars(
    name: &str,
    ip: &str,
    ports: &[k8s_openapi::api::core::v1::ServicePort],
) -> Vec<(String, String)> {
    let Some(first) = ports.first() else {
        return Vec::new();
    };
    let prefix = name.replace('-', "_").to_uppercase();
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), first.port.to_string()),
    ];
    for p in ports {
        if let Some(n) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!(
                    "{prefix}_SERVICE_PORT_{}",
                    n.replace('-', "_").to_uppercase()
                ),
                p.port.to_string(),
            ));
        }
    }
    let host_port = |port: i32| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, p) in ports.iter().enumerate() {
        let proto = p.protocol.as_deref().unwrap_or("TCP");
        let url = format!("{}://{}", proto.to_lowercase(), host_port(p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let pp = format!("{prefix}_PORT_{}_{}", p.port, proto.to_uppercase());
        out.push((pp.clone(), url));
        out.push((format!("{pp}_PROTO"), proto.to_lowercase()));
        out.push((format!("{pp}_PORT"), p.port.to_string()));
        out.push((format!("{pp}_ADDR"), ip.to_string()));
    }
    out
}

/// The process environment: what a container runtime sets from the image and
/// the pod's hostname, overridden by the kubelet's variables.
pub fn process_env(kubelet_env: &[(String, String)], hostname: &str) -> Vec<(String, String)> {
    let mut env = OrderedEnv::default();
    env.set("PATH".into(), DEFAULT_PATH.into());
    env.set("HOSTNAME".into(), hostname.into());
    env.set("HOME".into(), "/root".into());
    for (k, v) in kubelet_env {
        env.set(k.clone(), v.clone());
    }
    env.vars
}

/// `$(VAR)`-expands command or args with the container's kubelet-made
/// variables (`kubecontainer.ExpandContainerCommandAndArgs`; runtime defaults
/// such as `HOSTNAME` are not among them, as on a real node).
pub fn expand_all(items: &[String], kubelet_env: &[(String, String)]) -> Vec<String> {
    let map: HashMap<String, String> = kubelet_env.iter().cloned().collect();
    items.iter().map(|s| expand::expand(s, &[&map])).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::{
        ConfigMapEnvSource, ConfigMapKeySelector, EnvFromSource, EnvVar, EnvVarSource,
        ObjectFieldSelector, Pod, PodSpec, ResourceFieldSelector, SecretEnvSource,
        SecretKeySelector, ServicePort, ServiceSpec,
    };
    use kube::api::ObjectMeta;
    use std::collections::BTreeMap;

    fn pod(containers: Vec<Container>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("p".into()),
                namespace: Some("ns".into()),
                uid: Some("uid".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                containers,
                node_name: Some("node-0".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    fn var(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    fn from(name: &str, src: EnvVarSource) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: None,
            value_from: Some(src),
        }
    }

    fn lookup() -> Lookup {
        let cm = ConfigMap {
            data: Some(BTreeMap::from([
                ("a".into(), "cm-a".into()),
                ("b".into(), "cm-b".into()),
            ])),
            ..Default::default()
        };
        let secret = Secret {
            data: Some(BTreeMap::from([(
                "password".into(),
                ByteString(b"hunter2".to_vec()),
            )])),
            ..Default::default()
        };
        Lookup {
            config_maps: HashMap::from([
                ("cm".into(), Some(Arc::new(cm))),
                ("missing-cm".into(), None),
            ]),
            secrets: HashMap::from([
                ("s".into(), Some(Arc::new(secret))),
                ("missing".into(), None),
            ]),
        }
    }

    fn build(
        c: &Container,
        lookup: &Lookup,
        svc: &[(String, String)],
    ) -> Result<Vec<(String, String)>, String> {
        let p = pod(vec![c.clone()]);
        let ips = vec!["10.244.1.2".to_string()];
        let host = vec!["10.244.1.1".to_string()];
        container_env(
            c,
            &EnvInputs {
                field: FieldCtx {
                    pod: &p,
                    pod_ips: &ips,
                    host_ips: &host,
                },
                alloc: Allocatable {
                    cpu: "8",
                    memory: "16Gi",
                    ephemeral_storage: "100Gi",
                },
                service_env: svc,
                lookup,
            },
        )
    }

    fn get<'a>(env: &'a [(String, String)], k: &str) -> Option<&'a str> {
        env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn env_order_expansion_and_sources() {
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![
                EnvFromSource {
                    config_map_ref: Some(ConfigMapEnvSource {
                        name: "cm".into(),
                        optional: None,
                    }),
                    prefix: Some("CM_".into()),
                    secret_ref: None,
                },
                EnvFromSource {
                    secret_ref: Some(SecretEnvSource {
                        name: "s".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            ]),
            env: Some(vec![
                var("A", "x"),
                var("B", "$(A)-$(CM_a)-$(SVC_SERVICE_HOST)-$(UNDEFINED)-$$(A)"),
                var("CM_b", "override"),
                from(
                    "IP",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "status.podIP".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "NODE",
                    EnvVarSource {
                        field_ref: Some(ObjectFieldSelector {
                            field_path: "spec.nodeName".into(),
                            api_version: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "PW",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "s".into(),
                            key: "password".into(),
                            optional: None,
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "OPT",
                    EnvVarSource {
                        secret_key_ref: Some(SecretKeySelector {
                            name: "missing".into(),
                            key: "k".into(),
                            optional: Some(true),
                        }),
                        ..Default::default()
                    },
                ),
                from(
                    "MEM",
                    EnvVarSource {
                        resource_field_ref: Some(ResourceFieldSelector {
                            resource: "limits.memory".into(),
                            divisor: Some(k8s_openapi::apimachinery::pkg::api::resource::Quantity(
                                "1Mi".into(),
                            )),
                            container_name: None,
                        }),
                        ..Default::default()
                    },
                ),
            ]),
            ..Default::default()
        };
        let svc = vec![
            ("SVC_SERVICE_HOST".to_string(), "10.96.0.9".to_string()),
            ("A".to_string(), "service-a".to_string()),
        ];
        let env = build(&c, &lookup(), &svc).unwrap();
        assert_eq!(get(&env, "CM_a"), Some("cm-a"));
        assert_eq!(get(&env, "CM_b"), Some("override"));
        assert_eq!(get(&env, "password"), Some("hunter2"));
        assert_eq!(get(&env, "B"), Some("x-cm-a-10.96.0.9-$(UNDEFINED)-$(A)"));
        assert_eq!(get(&env, "IP"), Some("10.244.1.2"));
        assert_eq!(get(&env, "NODE"), Some("node-0"));
        assert_eq!(get(&env, "PW"), Some("hunter2"));
        assert_eq!(get(&env, "OPT"), None);
        assert_eq!(get(&env, "MEM"), Some("16384"));
        // The container's own A wins over the service variable of that name,
        // which is not added twice.
        assert_eq!(get(&env, "A"), Some("x"));
        assert_eq!(env.iter().filter(|(k, _)| k == "A").count(), 1);
        assert_eq!(get(&env, "SVC_SERVICE_HOST"), Some("10.96.0.9"));
        // Declaration order: envFrom keys, then env.
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(&names[..4], ["CM_a", "CM_b", "password", "A"]);
    }

    #[test]
    fn missing_required_sources_are_config_errors() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![from(
                "X",
                EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: "missing".into(),
                        key: "k".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert_eq!(
            build(&c, &lookup(), &[]).unwrap_err(),
            "secret \"missing\" not found"
        );
        let c = Container {
            name: "c".into(),
            env: Some(vec![from(
                "X",
                EnvVarSource {
                    config_map_key_ref: Some(ConfigMapKeySelector {
                        name: "cm".into(),
                        key: "nope".into(),
                        optional: None,
                    }),
                    ..Default::default()
                },
            )]),
            ..Default::default()
        };
        assert_eq!(
            build(&c, &lookup(), &[]).unwrap_err(),
            "couldn't find key nope in ConfigMap ns/cm"
        );
        let c = Container {
            name: "c".into(),
            env_from: Some(vec![EnvFromSource {
                config_map_ref: Some(ConfigMapEnvSource {
                    name: "missing-cm".into(),
                    optional: Some(true),
                }),
                ..Default::default()
            }]),
            ..Default::default()
        };
        assert_eq!(build(&c, &lookup(), &[]).unwrap(), vec![]);
    }

    #[test]
    fn service_links() {
        let svc = |ns: &str, name: &str, ip: &str, ports: Vec<ServicePort>| {
            Arc::new(Service {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    namespace: Some(ns.into()),
                    ..Default::default()
                },
                spec: Some(ServiceSpec {
                    cluster_ip: Some(ip.into()),
                    ports: Some(ports),
                    ..Default::default()
                }),
                status: None,
            })
        };
        let port = |name: Option<&str>, p: i32| ServicePort {
            name: name.map(Into::into),
            port: p,
            protocol: Some("TCP".into()),
            ..Default::default()
        };
        let services = vec![
            svc(
                "ns",
                "my-cache",
                "10.96.0.20",
                vec![port(Some("redis"), 6379), port(Some("metrics"), 9090)],
            ),
            svc("ns", "headless", "None", vec![port(None, 80)]),
            svc("other", "elsewhere", "10.96.0.30", vec![port(None, 80)]),
            svc(
                "default",
                "kubernetes",
                "10.96.0.1",
                vec![port(Some("https"), 443)],
            ),
        ];
        let master = Master {
            host: "10.96.0.1",
            port: 443,
        };
        let env = service_env(&services, "ns", true, &master);
        let g = |k: &str| get(&env, k);
        assert_eq!(g("KUBERNETES_SERVICE_HOST"), Some("10.96.0.1"));
        assert_eq!(g("KUBERNETES_SERVICE_PORT"), Some("443"));
        assert_eq!(g("KUBERNETES_SERVICE_PORT_HTTPS"), Some("443"));
        assert_eq!(g("KUBERNETES_PORT"), Some("tcp://10.96.0.1:443"));
        assert_eq!(g("KUBERNETES_PORT_443_TCP"), Some("tcp://10.96.0.1:443"));
        assert_eq!(g("KUBERNETES_PORT_443_TCP_PROTO"), Some("tcp"));
        assert_eq!(g("KUBERNETES_PORT_443_TCP_PORT"), Some("443"));
        assert_eq!(g("KUBERNETES_PORT_443_TCP_ADDR"), Some("10.96.0.1"));
        assert_eq!(g("MY_CACHE_SERVICE_HOST"), Some("10.96.0.20"));
        assert_eq!(g("MY_CACHE_SERVICE_PORT"), Some("6379"));
        assert_eq!(g("MY_CACHE_SERVICE_PORT_METRICS"), Some("9090"));
        assert_eq!(g("MY_CACHE_PORT"), Some("tcp://10.96.0.20:6379"));
        assert_eq!(g("MY_CACHE_PORT_9090_TCP_ADDR"), Some("10.96.0.20"));
        assert_eq!(g("HEADLESS_SERVICE_HOST"), None);
        assert_eq!(g("ELSEWHERE_SERVICE_HOST"), None);
        let env = service_env(&services, "ns", false, &master);
        assert!(env.iter().all(|(k, _)| k.starts_with("KUBERNETES_")));
    }

    #[test]
    fn process_env_and_command_expansion() {
        let kubelet = vec![
            ("PATH".to_string(), "/custom".to_string()),
            ("PORT".to_string(), "6379".to_string()),
        ];
        let env = process_env(&kubelet, "web-0");
        assert_eq!(get(&env, "PATH"), Some("/custom"));
        assert_eq!(get(&env, "HOSTNAME"), Some("web-0"));
        let args = expand_all(
            &[
                "--port=$(PORT)".into(),
                "$(HOSTNAME)".into(),
                "$$(PORT)".into(),
            ],
            &kubelet,
        );
        assert_eq!(args, ["--port=6379", "$(HOSTNAME)", "$(PORT)"]);
    }
}
