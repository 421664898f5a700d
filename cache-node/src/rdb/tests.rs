//! Round trips through our own writer and reader, and refusal of damaged
//! input. Interoperability with redis-server itself is proven in
//! `tests/rdb_redis.rs`.

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::db::Value;
use crate::types::{End, Hash, List, Set, SortedSet};

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn sample() -> Vec<(Bytes, Value, Option<u64>)> {
    let mut list = List::default();
    for s in ["a", "", "ccc", "12"] {
        list.push(End::Right, b(s));
    }
    let mut hash = Hash::default();
    hash.insert(b("f1"), b("v1"));
    hash.insert(b("f2"), Bytes::from(vec![0u8; 70_000]));
    let mut set = Set::default();
    set.insert(b("m1"));
    set.insert(b("-42"));
    let mut z = SortedSet::default();
    z.insert(b("one"), 1.5);
    z.insert(b("inf"), f64::INFINITY);
    z.insert(b("neg"), -0.25);
    vec![
        (b("str"), Value::Str(b("hello")), None),
        (
            b("empty"),
            Value::Str(Bytes::new()),
            Some(1_900_000_000_123),
        ),
        (b("big"), Value::Str(Bytes::from(vec![7u8; 20_000])), None),
        (
            Bytes::from(vec![0xff, 0, 1]),
            Value::Str(b("binary key")),
            None,
        ),
        (b("list"), Value::List(list), Some(1)),
        (b("hash"), Value::Hash(hash), None),
        (b("set"), Value::Set(set), None),
        (b("zset"), Value::ZSet(z), Some(u64::MAX / 2)),
    ]
}

fn file_of(items: &[(Bytes, Value, Option<u64>)]) -> Vec<u8> {
    let mut out = Vec::new();
    header(&mut out, &[("tidecache-ver", b"test")]);
    for (k, v, at) in items {
        entry(&mut out, k, v.as_ref(), *at);
    }
    out.push(op::EOF);
    let crc = CRC64.checksum(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn read_all(bytes: &[u8]) -> Result<Vec<(Bytes, Value, Option<u64>)>, RdbError> {
    let mut r = Reader::new(bytes)?;
    let mut items = Vec::new();
    while let Some(i) = r.next_item()? {
        items.push((i.key, i.value, i.expires_at));
    }
    Ok(items)
}

#[test]
fn crc64_is_redis_crc64() {
    // The check value of crc64.c's own test.
    assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
}

#[test]
fn a_file_round_trips() {
    let items = sample();
    let file = file_of(&items);
    assert_eq!(&file[..9], b"REDIS0010");
    assert_eq!(read_all(&file).unwrap(), items);
}

#[test]
fn every_truncation_is_refused() {
    let file = file_of(&sample()[..5]);
    for cut in 0..file.len() {
        assert!(
            read_all(&file[..cut]).is_err(),
            "cut at {cut} of {}",
            file.len()
        );
    }
}

#[test]
fn every_flipped_byte_is_refused() {
    let file = file_of(&sample()[..5]);
    for at in 9..file.len() {
        let mut bad = file.clone();
        bad[at] ^= 0x20;
        assert!(read_all(&bad).is_err(), "flip at {at}");
    }
}

#[test]
fn trailing_bytes_and_other_databases_are_refused() {
    let mut file = file_of(&sample()[..1]);
    file.push(0);
    assert!(matches!(read_all(&file), Err(RdbError::Corrupt { .. })));
    let mut other = Vec::new();
    other.extend_from_slice(b"REDIS0009");
    other.extend_from_slice(&[op::SELECTDB, 3, op::EOF]);
    other.extend_from_slice(&[0; 8]);
    assert!(matches!(read_all(&other), Err(RdbError::Database(3))));
    assert!(matches!(read_all(b"REDIS0012"), Err(RdbError::Version(12))));
    assert!(matches!(read_all(b"RDB"), Err(RdbError::NotRdb)));
}

#[test]
fn streams_are_refused_by_name() {
    let mut file = Vec::new();
    file.extend_from_slice(b"REDIS0011");
    file.extend_from_slice(&[ty::STREAM_LISTPACKS_3, 1, b's', 0]);
    assert!(matches!(
        read_all(&file),
        Err(RdbError::Unsupported { what: "stream", .. })
    ));
}

#[test]
fn payloads_round_trip_and_damage_is_refused() {
    for (_, v, _) in sample() {
        let p = dump_payload(v.as_ref());
        assert_eq!(load_payload(&p).unwrap(), v);
        let mut bad = p.clone();
        bad[1] ^= 1;
        assert!(matches!(load_payload(&bad), Err(RdbError::Checksum { .. })));
        assert!(load_payload(&p[..p.len() - 1]).is_err());
    }
    // A newer version is refused even with a good checksum.
    let mut p = dump_payload(Value::Str(b("x")).as_ref());
    let n = p.len();
    p[n - 10..n - 8].copy_from_slice(&12u16.to_le_bytes());
    let crc = CRC64.checksum(&p[..n - 8]);
    p[n - 8..].copy_from_slice(&crc.to_le_bytes());
    assert!(matches!(load_payload(&p), Err(RdbError::Version(12))));
}

#[test]
fn packed_types_decode() {
    use packed::Elem;
    fn lp(elems: &[Elem<'_>]) -> Vec<u8> {
        packed::tests::build_listpack(elems)
    }
    fn file(t: u8, blob: &[u8], quicklist: bool) -> Vec<u8> {
        let mut out = b"REDIS0011".to_vec();
        out.push(t);
        write::put_str(&mut out, b"k");
        if quicklist {
            write::put_len(&mut out, 1);
            write::put_len(&mut out, QUICKLIST_PACKED);
        }
        write::put_str(&mut out, blob);
        out.push(op::EOF);
        out.extend_from_slice(&[0; 8]);
        out
    }
    let elems = [
        Elem::Str(b"a"),
        Elem::Int(-3),
        Elem::Str(b"b"),
        Elem::Int(7),
    ];
    let one = |t, q| read_all(&file(t, &lp(&elems), q)).unwrap().remove(0).1;
    let Value::List(l) = one(ty::LIST_QUICKLIST_2, true) else {
        panic!()
    };
    assert_eq!(
        l.iter().cloned().collect::<Vec<_>>(),
        [b("a"), b("-3"), b("b"), b("7")]
    );
    let Value::Hash(h) = one(ty::HASH_LISTPACK, false) else {
        panic!()
    };
    assert_eq!(h.get(b"a"), Some(&b("-3")));
    let Value::ZSet(z) = one(ty::ZSET_LISTPACK, false) else {
        panic!()
    };
    assert_eq!((z.score(b"a"), z.score(b"b")), (Some(-3.0), Some(7.0)));
    let Value::Set(s) = one(ty::SET_LISTPACK, false) else {
        panic!()
    };
    assert_eq!(s.len(), 4);
    // Odd element counts for pairs are corrupt.
    assert!(read_all(&file(ty::HASH_LISTPACK, &lp(&elems[..3]), false)).is_err());
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(Bytes::from)
}

fn arb_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        arb_bytes().prop_map(Value::Str),
        prop::collection::vec(arb_bytes(), 1..20).prop_map(|v| {
            let mut l = List::default();
            v.into_iter().for_each(|i| l.push(End::Right, i));
            Value::List(l)
        }),
        prop::collection::vec((arb_bytes(), arb_bytes()), 1..20).prop_map(|v| {
            let mut h = Hash::default();
            v.into_iter().for_each(|(f, x)| {
                h.insert(f, x);
            });
            Value::Hash(h)
        }),
        prop::collection::vec(arb_bytes(), 1..20).prop_map(|v| {
            let mut s = Set::default();
            v.into_iter().for_each(|m| {
                s.insert(m);
            });
            Value::Set(s)
        }),
        prop::collection::vec((arb_bytes(), -1e300f64..1e300), 1..20).prop_map(|v| {
            let mut z = SortedSet::default();
            v.into_iter().for_each(|(m, s)| {
                z.insert(m, s);
            });
            Value::ZSet(z)
        }),
    ]
}

proptest! {
    #[test]
    fn any_keyspace_round_trips(
        items in prop::collection::vec((arb_bytes(), arb_value(), prop::option::of(any::<u64>())), 0..30)
    ) {
        let file = file_of(&items);
        prop_assert_eq!(read_all(&file).unwrap(), items);
    }

    #[test]
    fn any_value_round_trips_as_a_payload(v in arb_value()) {
        prop_assert_eq!(load_payload(&dump_payload(v.as_ref())).unwrap(), v);
    }

    #[test]
    fn random_bytes_never_panic(tail in prop::collection::vec(any::<u8>(), 0..200)) {
        let mut file = b"REDIS0011".to_vec();
        file.extend(tail);
        let _ = read_all(&file);
        let _ = load_payload(&file[9..]);
    }
}

#[test]
fn empty_collections_are_skipped_in_files_and_refused_in_payloads() {
    let mut file = b"REDIS0010".to_vec();
    file.push(ty::SET);
    write::put_str(&mut file, b"empty");
    write::put_len(&mut file, 0);
    file.push(ty::STRING);
    write::put_str(&mut file, b"k");
    write::put_str(&mut file, b"v");
    file.push(op::EOF);
    let crc = CRC64.checksum(&file);
    file.extend_from_slice(&crc.to_le_bytes());
    assert_eq!(
        read_all(&file).unwrap(),
        vec![(b("k"), Value::Str(b("v")), None)]
    );

    let mut payload = vec![ty::LIST, 0];
    payload.extend_from_slice(&VERSION.to_le_bytes());
    let crc = CRC64.checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    assert!(matches!(
        load_payload(&payload),
        Err(RdbError::Corrupt { .. })
    ));
}

#[test]
fn an_lzf_length_is_not_taken_on_trust() {
    // A string claiming 2^60 bytes once decompressed, from 1 byte: an
    // error, not an allocation of that size.
    let mut payload = vec![ty::STRING, 0xC3, 1, 0x81];
    payload.extend_from_slice(&(1u64 << 60).to_be_bytes());
    payload.push(0);
    payload.extend_from_slice(&VERSION.to_le_bytes());
    let crc = CRC64.checksum(&payload);
    payload.extend_from_slice(&crc.to_le_bytes());
    assert!(load_payload(&payload).is_err());
}
