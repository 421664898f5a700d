//! Writing RDB: the header, one key at a time (so a capture's sink can
//! serialize straight into its buffer), and DUMP payloads. The trailer (end
//! marker and checksum) is written by whoever holds the running checksum:
//! see [`crate::snapshot`].

use super::{VERSION, op, ty};
use crate::db::ValueRef;

/// Appends an RDB length (6, 14, 32 or 64 bits, big-endian above 6).
pub(super) fn put_len(out: &mut Vec<u8>, n: u64) {
    if n < 1 << 6 {
        out.push(n as u8);
    } else if n < 1 << 14 {
        out.extend_from_slice(&[0x40 | (n >> 8) as u8, n as u8]);
    } else if let Ok(n) = u32::try_from(n) {
        out.push(0x80);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// Appends the signature, the version, `aux` metadata and the selection
/// of database 0.
pub fn header(out: &mut Vec<u8>, aux: &[(&str, &[u8])]) {
    out.extend_from_slice(format!("REDIS{VERSION:04}").as_bytes());
    for (name, value) in aux {
        out.push(op::AUX);
        put_str(out, name.as_bytes());
        put_str(out, value);
    }
    out.push(op::SELECTDB);
    put_len(out, 0);
}

/// The type byte a value is written with.
fn type_of(value: ValueRef<'_>) -> u8 {
    match value {
        ValueRef::Str(_) => ty::STRING,
        ValueRef::List(_) => ty::LIST,
        ValueRef::Set(_) => ty::SET,
        ValueRef::ZSet(_) => ty::ZSET_2,
        ValueRef::Hash(_) => ty::HASH,
    }
}

/// The value as its type's RDB encoding lays it out.
fn put_value(out: &mut Vec<u8>, value: ValueRef<'_>) {
    match value {
        ValueRef::Str(s) => put_str(out, &s),
        ValueRef::List(l) => {
            put_len(out, l.len() as u64);
            for item in l.iter() {
                put_str(out, item);
            }
        }
        ValueRef::Set(s) => {
            put_len(out, s.len() as u64);
            for member in s.iter() {
                put_str(out, member);
            }
        }
        ValueRef::ZSet(z) => {
            put_len(out, z.len() as u64);
            for (member, score) in z.iter() {
                put_str(out, member);
                out.extend_from_slice(&score.to_le_bytes());
            }
        }
        ValueRef::Hash(h) => {
            put_len(out, h.len() as u64);
            for (field, value) in h.iter() {
                put_str(out, field);
                put_str(out, value);
            }
        }
    }
}

/// Appends one key: its deadline (Unix ms) if any, type, name and value.
pub fn entry(out: &mut Vec<u8>, key: &[u8], value: ValueRef<'_>, expires_at: Option<u64>) {
    if let Some(at) = expires_at {
        out.push(op::EXPIRETIME_MS);
        out.extend_from_slice(&at.to_le_bytes());
    }
    out.push(type_of(value));
    put_str(out, key);
    put_value(out, value);
}

/// `DUMP`'s payload: the value, the RDB version and a CRC-64 of both.
pub fn dump_payload(value: ValueRef<'_>) -> Vec<u8> {
    let mut out = vec![type_of(value)];
    put_value(&mut out, value);
    out.extend_from_slice(&VERSION.to_le_bytes());
    let crc = super::CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}
