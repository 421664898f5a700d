//! A snapshot's manifest and where its objects go: pure, tested without
//! storage.
//!
//! A snapshot is a directory `<namespace>/<cluster>/<snapshot id>/` below
//! the storage's prefix, holding one object per shard and `manifest.json`.
//! The manifest is written last, after every shard's object is complete,
//! so a directory without one is an incomplete snapshot by construction.
//! It records the format version, the cluster, the epoch, and per object
//! the shard, slot ranges, keys, sizes and the RDB stream's CRC-64; a
//! restore checks that its objects cover every slot exactly once.

use serde::{Deserialize, Serialize};
use tidecache_topology::{SLOT_COUNT, SlotRange, SlotSet};

use crate::crd::SnapshotObject;

/// The manifest format this operator writes and reads.
pub const FORMAT: u32 = 1;

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub format: u32,
    pub snapshot_id: String,
    pub namespace: String,
    pub cluster: String,
    /// The topology epoch the snapshot was taken at.
    pub epoch: u64,
    /// RFC 3339.
    pub created_at: String,
    pub keys: u64,
    /// Bytes stored, over all objects.
    pub size: u64,
    pub objects: Vec<SnapshotObject>,
}

/// The directory of snapshot `id` of `namespace/cluster`.
pub fn directory(namespace: &str, cluster: &str, id: &str) -> String {
    format!("{namespace}/{cluster}/{id}")
}

/// Shard `shard`'s object in `dir`, with the storage's suffix.
pub fn object_path(dir: &str, shard: &str, suffix: &str) -> String {
    format!("{dir}/{shard}{suffix}")
}

pub fn manifest_path(dir: &str) -> String {
    format!("{dir}/manifest.json")
}

/// A snapshot's id: its resource's name and the start of its uid, so a
/// snapshot deleted and created again under the same name never mixes
/// its objects with the old ones'.
pub fn snapshot_id(name: &str, uid: &str) -> String {
    // Nodes take ids of up to 64 characters; the uid part keeps a
    // shortened name unique.
    let name: String = name.chars().take(48).collect();
    format!("{name}-{}", short_uid(uid))
}

/// The first 8 hex digits of a uid: what tells apart objects of the same
/// name deleted and created again.
pub fn short_uid(uid: &str) -> String {
    uid.chars().filter(|c| *c != '-').take(8).collect()
}

impl Manifest {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("a manifest serializes")
    }

    /// Reads a manifest and checks it describes a whole snapshot.
    pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
        let m: Manifest =
            serde_json::from_slice(bytes).map_err(|e| format!("not a snapshot manifest: {e}"))?;
        if m.format != FORMAT {
            return Err(format!(
                "manifest format {} is not one this operator reads ({FORMAT})",
                m.format
            ));
        }
        covers_every_slot(&m.objects)?;
        Ok(m)
    }
}

/// Whether `objects`' slot ranges hold every slot exactly once.
pub fn covers_every_slot(objects: &[SnapshotObject]) -> Result<(), String> {
    if objects.is_empty() {
        return Err("the snapshot has no objects".into());
    }
    let mut seen = SlotSet::new();
    let mut count = 0usize;
    for o in objects {
        for text in &o.slots {
            let range: SlotRange = text
                .parse()
                .map_err(|e| format!("object {}: slot range {text:?}: {e}", o.object))?;
            for slot in range.start..=range.end {
                if seen.contains(slot) {
                    return Err(format!("slot {slot} is in two objects"));
                }
                seen.insert(slot);
                count += 1;
            }
        }
    }
    if count != usize::from(SLOT_COUNT) {
        return Err(format!(
            "the objects hold {count} of the {SLOT_COUNT} slots"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(shard: &str, slots: &[&str]) -> SnapshotObject {
        SnapshotObject {
            shard: shard.into(),
            object: format!("ns/c/s-1/{shard}.rdb"),
            slots: slots.iter().map(|s| s.to_string()).collect(),
            keys: 10,
            rdb_bytes: 100,
            stored_bytes: 90,
            crc64: "00000000000000ff".into(),
        }
    }

    fn manifest(objects: Vec<SnapshotObject>) -> Manifest {
        Manifest {
            format: FORMAT,
            snapshot_id: "s-1".into(),
            namespace: "ns".into(),
            cluster: "c".into(),
            epoch: 3,
            created_at: "2026-12-07T08:00:00Z".into(),
            keys: 20,
            size: 180,
            objects,
        }
    }

    #[test]
    fn a_whole_snapshot_round_trips() {
        let m = manifest(vec![
            object("c-0", &["0-8191"]),
            object("c-1", &["8192-10000", "10001-16383"]),
        ]);
        assert_eq!(Manifest::parse(&m.to_json()).unwrap(), m);
    }

    #[test]
    fn gaps_overlaps_and_other_formats_are_refused() {
        let gap = manifest(vec![
            object("c-0", &["0-8190"]),
            object("c-1", &["8192-16383"]),
        ]);
        assert!(
            Manifest::parse(&gap.to_json())
                .unwrap_err()
                .contains("16383 of the 16384")
        );
        let overlap = manifest(vec![
            object("c-0", &["0-8192"]),
            object("c-1", &["8192-16383"]),
        ]);
        assert!(
            Manifest::parse(&overlap.to_json())
                .unwrap_err()
                .contains("slot 8192")
        );
        let mut newer = manifest(vec![object("c-0", &["0-16383"])]);
        newer.format = 2;
        assert!(
            Manifest::parse(&newer.to_json())
                .unwrap_err()
                .contains("format 2")
        );
        assert!(Manifest::parse(b"{}").is_err());
        assert!(Manifest::parse(&manifest(vec![]).to_json()).is_err());
    }

    #[test]
    fn names() {
        let dir = directory(
            "prod",
            "cache",
            &snapshot_id("nightly", "1f2e3d4c-aaaa-bbbb"),
        );
        assert_eq!(dir, "prod/cache/nightly-1f2e3d4c");
        assert_eq!(
            object_path(&dir, "cache-0", ".rdb.zst"),
            "prod/cache/nightly-1f2e3d4c/cache-0.rdb.zst"
        );
        assert_eq!(
            manifest_path(&dir),
            "prod/cache/nightly-1f2e3d4c/manifest.json"
        );
    }
}
