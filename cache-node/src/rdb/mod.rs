//! Redis's RDB format, written and read by our own code: snapshots,
//! `SAVE`/`BGSAVE` files and `DUMP`/`RESTORE` payloads.
//!
//! ```text
//! file    := "REDIS" version:4 digits  item*  0xFF  crc64:u64-le
//! item    := 0xFA aux-name aux-value            (AUX: metadata)
//!          | 0xFE db:len                        (SELECTDB)
//!          | 0xFB keys:len expires:len          (RESIZEDB: a hint)
//!          | [0xFC ms:u64-le | 0xFD s:u32-le]   (the next key's deadline)
//!            [0xF8 idle:len | 0xF9 freq:u8]     (the next key's LRU/LFU data)
//!            type:u8 key:string value
//!          | 0xF4 slot:len keys:len expires:len (SLOT_INFO, Valkey 8: a hint)
//!          | 0xF5 library-code:string           (FUNCTION2)
//!          | 0xF7 ...                           (MODULE_AUX)
//! payload := type:u8 value version:u16-le crc64:u64-le   (DUMP)
//! ```
//!
//! We write version 10, what redis-server 7.0 writes and the newest it
//! loads, with the plain encodings every version since 2.x reads (a
//! string, a list or set as a count and strings, a hash as pairs, a sorted
//! set as members and binary doubles): packed encodings save bytes the
//! object-level compression of snapshots saves anyway, and cost a second
//! pass over each collection. We read every type and encoding Redis 2.x to
//! 7.2 and Valkey 7.2 to 8.x write, up to version 11; streams and module
//! values are refused by name, as this node has no such types.
//!
//! The checksum is CRC-64/Jones as Redis computes it (`crc64.c`), the
//! catalogue's CRC-64/REDIS.

pub mod packed;
mod read;
mod write;

pub use read::{Item, Reader, load_payload};
pub use write::{dump_payload, entry, header};

/// The version we write: redis-server 7.0's (Redis 7.2 and Valkey write
/// 11, which 7.0 refuses).
pub const VERSION: u16 = 10;

/// The newest version we read: Redis 7.2's and Valkey 7.2–8.x's.
pub const VERSION_READ_MAX: u16 = 11;

/// Value types (`RDB_TYPE_*` in Redis's `rdb.h`).
pub(crate) mod ty {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE_PRE_GA: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
    pub const SET_LISTPACK: u8 = 20;
    pub const STREAM_LISTPACKS_3: u8 = 21;
}

/// Opcodes between keys (`RDB_OPCODE_*`).
pub(crate) mod op {
    pub const SLOT_INFO: u8 = 0xF4;
    pub const FUNCTION2: u8 = 0xF5;
    pub const FUNCTION_PRE_GA: u8 = 0xF6;
    pub const MODULE_AUX: u8 = 0xF7;
    pub const IDLE: u8 = 0xF8;
    pub const FREQ: u8 = 0xF9;
    pub const AUX: u8 = 0xFA;
    pub const RESIZEDB: u8 = 0xFB;
    pub const EXPIRETIME_MS: u8 = 0xFC;
    pub const EXPIRETIME: u8 = 0xFD;
    pub const SELECTDB: u8 = 0xFE;
    pub const EOF: u8 = 0xFF;
}

/// The end marker, which the checksum follows.
pub const EOF: u8 = op::EOF;

/// Quicklist 2 node containers.
pub(crate) const QUICKLIST_PLAIN: u64 = 1;
pub(crate) const QUICKLIST_PACKED: u64 = 2;

/// Redis's CRC-64 (Jones polynomial, reflected, no final xor), table-driven
/// 16 bytes at a time.
pub static CRC64: crc::Crc<u64, crc::Table<16>> =
    crc::Crc::<u64, crc::Table<16>>::new(&crc::CRC_64_REDIS);

/// Why an RDB stream or payload was refused.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    #[error("reading the RDB stream: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an RDB file: it does not start with REDIS and a version")]
    NotRdb,
    #[error("RDB version {0} is newer than this node reads (up to {VERSION_READ_MAX})")]
    Version(u16),
    #[error("the RDB stream ends at byte {0}, before its end marker: truncated")]
    Truncated(u64),
    #[error("corrupt RDB at byte {at}: {what}")]
    Corrupt { at: u64, what: String },
    #[error("RDB checksum mismatch: the file says {stored:#018x}, its bytes give {computed:#018x}")]
    Checksum { stored: u64, computed: u64 },
    #[error("RDB holds a {what} at byte {at}, which this node does not support")]
    Unsupported { at: u64, what: &'static str },
    #[error("RDB holds keys of database {0}: this node has database 0 only")]
    Database(u64),
}

#[cfg(test)]
mod tests;
