//! Downward API field paths (`fieldRef.fieldPath`), as the kubelet's
//! `podFieldSelectorRuntimeValue` and `fieldpath.ExtractFieldPathAsString`.

use std::collections::BTreeMap;

use anyhow::bail;
use k8s_openapi::api::core::v1::Pod;

/// The values a kubelet knows about a pod beyond its object.
pub struct FieldCtx<'a> {
    pub pod: &'a Pod,
    pub pod_ips: &'a [String],
    pub host_ips: &'a [String],
}

/// A `fieldRef` for an environment variable (metadata, spec and status
/// fields).
pub fn env_value(ctx: &FieldCtx<'_>, path: &str) -> anyhow::Result<String> {
    let spec = ctx.pod.spec.as_ref();
    Ok(match path {
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" => ctx.host_ips.first().cloned().unwrap_or_default(),
        "status.hostIPs" => ctx.host_ips.join(","),
        "status.podIP" => ctx.pod_ips.first().cloned().unwrap_or_default(),
        "status.podIPs" => ctx.pod_ips.join(","),
        _ => metadata_value(ctx.pod, path)?,
    })
}

/// A `fieldRef` in a downwardAPI volume (metadata fields only).
pub fn metadata_value(pod: &Pod, path: &str) -> anyhow::Result<String> {
    let meta = &pod.metadata;
    if let Some((field, key)) = subscript(path) {
        let map = match field {
            "metadata.labels" => &meta.labels,
            "metadata.annotations" => &meta.annotations,
            _ => bail!("unsupported fieldPath: {path}"),
        };
        return Ok(map
            .as_ref()
            .and_then(|m| m.get(key))
            .cloned()
            .unwrap_or_default());
    }
    Ok(match path {
        "metadata.name" => meta.name.clone().unwrap_or_default(),
        "metadata.namespace" => meta.namespace.clone().unwrap_or_default(),
        "metadata.uid" => meta.uid.clone().unwrap_or_default(),
        "metadata.labels" => format_map(meta.labels.as_ref()),
        "metadata.annotations" => format_map(meta.annotations.as_ref()),
        _ => bail!("unsupported fieldPath: {path}"),
    })
}

/// Splits `metadata.labels['key']` into (`metadata.labels`, `key`).
fn subscript(path: &str) -> Option<(&str, &str)> {
    let open = path.find("['")?;
    let key = path[open + 2..].strip_suffix("']")?;
    Some((&path[..open], key))
}

/// `fieldpath.FormatMap`: sorted `key="value"` lines, values quoted like Go's
/// `%q`, no trailing newline.
pub fn format_map(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", go_quote(v)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Go's `strconv.Quote` for the characters that occur in labels and
/// annotations.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;
    use kube::api::ObjectMeta;

    fn pod() -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some("web-0".into()),
                namespace: Some("ns".into()),
                uid: Some("u-1".into()),
                labels: Some(BTreeMap::from([
                    ("app".into(), "web".into()),
                    ("tier".into(), "a\"b".into()),
                ])),
                annotations: Some(BTreeMap::from([("note".into(), "x\ny".into())])),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("node-1".into()),
                service_account_name: Some("sa".into()),
                ..Default::default()
            }),
            status: None,
        }
    }

    #[test]
    fn env_fields() {
        let p = pod();
        let ips = vec!["10.244.2.5".to_string()];
        let host = vec!["10.244.2.1".to_string()];
        let ctx = FieldCtx {
            pod: &p,
            pod_ips: &ips,
            host_ips: &host,
        };
        let v = |f: &str| env_value(&ctx, f).unwrap();
        assert_eq!(v("metadata.name"), "web-0");
        assert_eq!(v("metadata.namespace"), "ns");
        assert_eq!(v("metadata.uid"), "u-1");
        assert_eq!(v("spec.nodeName"), "node-1");
        assert_eq!(v("spec.serviceAccountName"), "sa");
        assert_eq!(v("status.podIP"), "10.244.2.5");
        assert_eq!(v("status.podIPs"), "10.244.2.5");
        assert_eq!(v("status.hostIP"), "10.244.2.1");
        assert_eq!(v("metadata.labels['app']"), "web");
        assert_eq!(v("metadata.labels['missing']"), "");
        assert_eq!(v("metadata.annotations['note']"), "x\ny");
        assert_eq!(v("metadata.labels"), "app=\"web\"\ntier=\"a\\\"b\"");
        assert_eq!(v("metadata.annotations"), "note=\"x\\ny\"");
        assert!(env_value(&ctx, "spec.bogus").is_err());
        assert!(metadata_value(&p, "spec.nodeName").is_err());
    }
}
