//! Just enough of `resource.Quantity` for the downward API's
//! `resourceFieldRef`: exact decimal parsing (floats would turn `0.1` CPU into
//! 101 millicores after rounding up) and the kubelet's rounding rules.

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// value = mantissa × 10^exp10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decimal {
    mantissa: i128,
    exp10: i32,
}

pub fn parse(s: &str) -> anyhow::Result<Decimal> {
    let s = s.trim();
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_end = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let (num, suffix) = body.split_at(num_end);
    if num.is_empty() || num == "." {
        bail!("invalid quantity {s:?}");
    }
    let (int, frac) = num.split_once('.').unwrap_or((num, ""));
    let digits = format!("{int}{frac}");
    let mut mantissa: i128 = digits
        .parse()
        .with_context(|| format!("invalid quantity {s:?}"))?;
    let mut exp10 = -(frac.len() as i32);
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            let power = "KMGTPE".find(&suffix[..1]).unwrap() as u32 + 1;
            mantissa = mantissa
                .checked_mul(1i128 << (10 * power))
                .context("quantity too large")?;
        }
        _ if suffix.starts_with(['e', 'E']) => {
            exp10 += suffix[1..]
                .parse::<i32>()
                .with_context(|| format!("invalid quantity {s:?}"))?;
        }
        _ => bail!("invalid quantity suffix in {s:?}"),
    }
    if neg {
        mantissa = -mantissa;
    }
    Ok(Decimal { mantissa, exp10 })
}

impl Decimal {
    /// ⌈value × 10^scale⌉, like `Quantity.ScaledValue` rounding up.
    fn scaled_ceil(self, scale: i32) -> i128 {
        let e = self.exp10 + scale;
        if e >= 0 {
            self.mantissa
                .saturating_mul(10i128.saturating_pow(e as u32))
        } else {
            let d = 10i128.saturating_pow((-e) as u32);
            self.mantissa.div_euclid(d) + i128::from(self.mantissa.rem_euclid(d) != 0)
        }
    }
    /// `Quantity.MilliValue()`.
    pub fn milli_value(self) -> i128 {
        self.scaled_ceil(3)
    }
    /// `Quantity.Value()`.
    pub fn value(self) -> i128 {
        self.scaled_ceil(0)
    }
}

fn ceil_div(a: i128, b: i128) -> i128 {
    if b == 0 {
        return 0;
    }
    a.div_euclid(b) + i128::from(a.rem_euclid(b) != 0)
}

/// Node allocatable, the default for unset limits in the downward API.
pub struct Allocatable<'a> {
    pub cpu: &'a str,
    pub memory: &'a str,
    pub ephemeral_storage: &'a str,
}

/// The kubelet's `ExtractContainerResourceValue` with its
/// `defaultPodLimitsForDownwardAPI` (unset limits are node allocatable).
pub fn container_resource_value(
    container: &Container,
    resource: &str,
    divisor: Option<&Quantity>,
    alloc: &Allocatable<'_>,
) -> anyhow::Result<String> {
    let divisor = match divisor {
        Some(q) if !q.0.is_empty() => parse(&q.0)?,
        _ => parse("1")?,
    };
    let res = container.resources.as_ref();
    let get = |limits: bool, name: &str| -> Option<String> {
        let map = if limits {
            res.and_then(|r| r.limits.as_ref())
        } else {
            res.and_then(|r| r.requests.as_ref())
        };
        map.and_then(|m| m.get(name)).map(|q| q.0.clone())
    };
    let (limits, name) = match resource.split_once('.') {
        Some(("limits", n)) => (true, n),
        Some(("requests", n)) => (false, n),
        _ => bail!("unsupported container resource: {resource}"),
    };
    let raw = match (get(limits, name), limits, name) {
        (Some(v), _, _) => v,
        (None, true, "cpu") => alloc.cpu.to_string(),
        (None, true, "memory") => alloc.memory.to_string(),
        (None, true, "ephemeral-storage") => alloc.ephemeral_storage.to_string(),
        (None, _, "cpu" | "memory" | "ephemeral-storage") => "0".to_string(),
        (None, _, n) if n.starts_with("hugepages-") => "0".to_string(),
        _ => bail!("unsupported container resource: {resource}"),
    };
    let q = parse(&raw)?;
    let v = if name == "cpu" {
        ceil_div(q.milli_value(), divisor.milli_value())
    } else {
        ceil_div(q.value(), divisor.value())
    };
    Ok(v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;
    use std::collections::BTreeMap;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse("500m").unwrap().milli_value(), 500);
        assert_eq!(parse("0.1").unwrap().milli_value(), 100);
        assert_eq!(parse("1").unwrap().milli_value(), 1000);
        assert_eq!(parse("2Gi").unwrap().value(), 2 << 30);
        assert_eq!(parse("128974848").unwrap().value(), 128974848);
        assert_eq!(parse("129e6").unwrap().value(), 129_000_000);
        assert_eq!(parse("123Mi").unwrap().value(), 123 << 20);
        assert_eq!(parse("1k").unwrap().value(), 1000);
        assert_eq!(parse("1E").unwrap().value(), 10i128.pow(18));
        assert_eq!(parse("1.5Gi").unwrap().value(), 3 << 29);
        assert_eq!(parse("1m").unwrap().value(), 1);
        assert_eq!(parse("250u").unwrap().milli_value(), 1);
        assert!(parse("abc").is_err());
        assert!(parse("1Zi").is_err());
    }

    #[test]
    fn resource_values() {
        let q = |s: &str| Quantity(s.to_string());
        let c = Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                limits: Some(BTreeMap::from([("memory".into(), q("64Mi"))])),
                requests: Some(BTreeMap::from([
                    ("cpu".into(), q("250m")),
                    ("memory".into(), q("32Mi")),
                ])),
                ..Default::default()
            }),
            ..Default::default()
        };
        let alloc = Allocatable {
            cpu: "8",
            memory: "16Gi",
            ephemeral_storage: "100Gi",
        };
        let v = |r: &str, d: Option<&str>| {
            container_resource_value(&c, r, d.map(q).as_ref(), &alloc).unwrap()
        };
        assert_eq!(v("requests.cpu", None), "1");
        assert_eq!(v("requests.cpu", Some("1m")), "250");
        assert_eq!(v("limits.cpu", None), "8");
        assert_eq!(v("limits.memory", None), (64 << 20).to_string());
        assert_eq!(v("limits.memory", Some("1Mi")), "64");
        assert_eq!(v("requests.memory", Some("1Mi")), "32");
        assert_eq!(v("requests.ephemeral-storage", None), "0");
        assert!(container_resource_value(&c, "limits.bogus", None, &alloc).is_err());
    }
}
