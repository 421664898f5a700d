//! The command table.

use super::flags::*;
use super::{
    Handler, admin, bits, blocking, cluster, connection, hashes, hll, keys, lists, migrate, multi,
    pubsub, repl, server, sets, slowlog, sort, strings, zsets,
};

/// One command as data.
pub struct Spec {
    /// Lowercase; subcommands are written `container|sub`, and the rows of
    /// a subcommand that is itself a container `container|sub|action`
    /// (`tidecache|import|begin`).
    pub name: &'static str,
    /// Exact argument count including the name; negative means "at least".
    pub arity: i32,
    pub flags: u32,
    /// Key positions: first key, last key (negative counts from the end),
    /// step; 0s for none. A `last` of [`KEYNUM`] marks a row whose keys are
    /// counted by a `numkeys` argument instead (built by [`numkeys`] and
    /// [`STORE_NUMKEYS`]); read it through [`Spec::key_spec`]. The first
    /// number is a key position in every form, so `keys.0 > 0` always means
    /// "this command has keys".
    pub keys: (i32, i32, i32),
    /// ACL categories but `@fast`/`@slow`, which come from the `FAST`
    /// flag ([`Spec::acl_categories`]).
    pub acl: &'static [&'static str],
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    /// For a subcommand that is itself a container, what runs when the
    /// next word names none of its rows (its syntax error).
    pub run: Handler,
    pub subcommands: &'static [Spec],
}

impl Spec {
    /// The name as clients type it after the container (`id` for `client|id`).
    pub fn short_name(&self) -> &'static str {
        match self.name.rfind('|') {
            Some(bar) => &self.name[bar + 1..],
            None => self.name,
        }
    }

    /// The name ACLs and error replies know the command by: Redis's two
    /// levels (`tidecache|import` for `tidecache|import|begin`).
    pub fn acl_name(&self) -> &'static str {
        match self.name.match_indices('|').nth(1) {
            Some((bar, _)) => &self.name[..bar],
            None => self.name,
        }
    }

    /// This row and every row below it, depth first.
    pub fn rows(&'static self) -> Box<dyn Iterator<Item = &'static Spec>> {
        Box::new(std::iter::once(self).chain(self.subcommands.iter().flat_map(Spec::rows)))
    }

    /// Where this command's keys are.
    pub fn key_spec(&self) -> KeySpec {
        match self.keys {
            (first, KEYNUM, numkeys) => KeySpec::KeyNum {
                first: first.max(0) as usize,
                numkeys: numkeys.max(0) as usize,
            },
            (first, SORT_STORE, _) => KeySpec::SortStore {
                key: first.max(1) as usize,
            },
            (first, last, step) if first > 0 => KeySpec::Range { first, last, step },
            _ => KeySpec::None,
        }
    }

    /// The (first, last, step) that `COMMAND INFO` reports, as Redis derives
    /// it from key specs: a keynum row reports only the keys before its count
    /// (the destination of the ...STORE forms), and clients learn the rest
    /// from the `movablekeys` flag and `COMMAND GETKEYS`.
    pub fn legacy_keys(&self) -> (i32, i32, i32) {
        match self.key_spec() {
            KeySpec::None => (0, 0, 0),
            KeySpec::Range { first, last, step } => (first, last, step),
            KeySpec::KeyNum { first, numkeys } if first < numkeys => {
                (first as i32, numkeys as i32 - 1, 1)
            }
            KeySpec::KeyNum { .. } => (0, 0, 0),
            KeySpec::SortStore { key } => (key as i32, key as i32, 1),
        }
    }

    /// Whether the key positions depend on the arguments (`movablekeys`).
    pub fn movable_keys(&self) -> bool {
        matches!(
            self.key_spec(),
            KeySpec::KeyNum { .. } | KeySpec::SortStore { .. }
        )
    }
}

/// A command's key positions, decoded from its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySpec {
    /// The command takes no keys.
    None,
    /// Keys at `first`, `first + step`, ... up to `last` (negative counts
    /// from the end).
    Range { first: i32, last: i32, step: i32 },
    /// Valkey's "keynum" key spec: the argument at `numkeys` says how many
    /// keys follow it. The arguments from `first` up to the count are keys
    /// too (`first == numkeys` when there are none, as in ZUNION).
    KeyNum { first: usize, numkeys: usize },
    /// `SORT`: the key at `key`, and the destination after the last
    /// `STORE` option (Redis's `sortGetKeys`, which skips the arguments
    /// of `LIMIT`, `GET` and `BY` to find it).
    SortStore { key: usize },
}

/// The `last` that marks a keynum row; no real row ends this far back.
pub const KEYNUM: i32 = i32::MIN;

/// The `last` that marks SORT's row (see [`KeySpec::SortStore`]).
pub const SORT_STORE: i32 = i32::MIN + 1;

/// `numkeys key [key ...]` with the count at `at`: ZUNION, SINTERCARD,
/// LMPOP (1); BLMPOP, BZMPOP (2, after the timeout).
pub(super) const fn numkeys(at: i32) -> (i32, i32, i32) {
    (at, KEYNUM, at)
}

/// `destination numkeys key [key ...]`: the ...STORE forms.
const STORE_NUMKEYS: (i32, i32, i32) = (1, KEYNUM, 2);

/// Finds a command by its name, ignoring ASCII case: top-level commands
/// through an index (every request does this), subcommands by a scan of
/// their container's few entries.
pub fn lookup<'a>(table: &'a [Spec], name: &[u8]) -> Option<&'a Spec> {
    if std::ptr::eq(table, COMMANDS) {
        return by_name(name);
    }
    table
        .iter()
        .find(|s| s.short_name().as_bytes().eq_ignore_ascii_case(name))
}

/// The longest top-level command name (`georadiusbymember_ro` and the
/// like stay well below).
const NAME_MAX: usize = 32;

fn by_name(name: &[u8]) -> Option<&'static Spec> {
    static INDEX: std::sync::LazyLock<hashbrown::HashMap<&'static [u8], &'static Spec>> =
        std::sync::LazyLock::new(|| {
            COMMANDS
                .iter()
                .inspect(|s| debug_assert!(s.name.len() <= NAME_MAX && !s.name.contains('|')))
                .map(|s| (s.name.as_bytes(), s))
                .collect()
        });
    if name.len() > NAME_MAX {
        return None;
    }
    let mut buf = [0u8; NAME_MAX];
    let buf = &mut buf[..name.len()];
    buf.copy_from_slice(name);
    buf.make_ascii_lowercase();
    INDEX.get(&*buf).copied()
}

// One argument per column of the table: a row reads best positionally.
#[allow(clippy::too_many_arguments)]
const fn spec(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    acl: &'static [&'static str],
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    run: Handler,
) -> Spec {
    Spec {
        name,
        arity,
        flags,
        keys,
        acl,
        group,
        since,
        summary,
        run,
        subcommands: &[],
    }
}

const fn container(
    name: &'static str,
    group: &'static str,
    since: &'static str,
    summary: &'static str,
    subcommands: &'static [Spec],
) -> Spec {
    Spec {
        name,
        arity: -2,
        flags: 0,
        keys: (0, 0, 0),
        acl: &[],
        group,
        since,
        summary,
        run: server::container_help,
        subcommands,
    }
}

/// A subcommand that is itself a container: its `row` holds the arity,
/// flags and ACL categories its actions share, and the handler that
/// answers a word naming none of them.
const fn nested(row: Spec, actions: &'static [Spec]) -> Spec {
    Spec {
        subcommands: actions,
        ..row
    }
}

/// `COMMAND`: a container that also runs bare (listing every command).
const fn command_container(subcommands: &'static [Spec]) -> Spec {
    Spec {
        arity: -1,
        flags: LOADING | STALE,
        ..container(
            "command",
            "server",
            "2.8.13",
            "Returns detailed information about all commands.",
            subcommands,
        )
    }
}

const NONE: (i32, i32, i32) = (0, 0, 0);
const ONE: (i32, i32, i32) = (1, 1, 1);
const ALL: (i32, i32, i32) = (1, -1, 1);
const PAIRS: (i32, i32, i32) = (1, -1, 2);

const CONN: u32 = NOSCRIPT | LOADING | STALE | FAST;
const ADMIN_CONN: u32 = NOSCRIPT | LOADING | STALE;
const PUBSUB: u32 = NOSCRIPT | LOADING | STALE;

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    // Connection.
    spec("ping", -1, FAST, NONE, &["@connection"], "connection", "1.0.0", "Returns the server's liveliness response.", connection::ping),
    spec("echo", 2, FAST, NONE, &["@connection"], "connection", "1.0.0", "Returns the given string.", connection::echo),
    spec("hello", -1, CONN | NO_AUTH, NONE, &["@connection"], "connection", "6.0.0", "Handshakes with the Redis server.", connection::hello),
    spec("auth", -2, CONN | NO_AUTH, NONE, &["@connection"], "connection", "1.0.0", "Authenticates the connection.", connection::auth),
    spec("quit", -1, CONN | NO_AUTH, NONE, &["@connection"], "connection", "1.0.0", "Closes the connection.", connection::quit),
    spec("select", 2, CONN, NONE, &["@connection"], "connection", "1.0.0", "Changes the selected database.", connection::select),
    container("client", "connection", "2.4.0", "A container for client connection commands.", &[
        spec("client|id", 2, CONN, NONE, &["@slow", "@connection"], "connection", "5.0.0", "Returns the unique client ID of the connection.", connection::client_id),
        spec("client|setname", 3, CONN, NONE, &["@slow", "@connection"], "connection", "2.6.9", "Sets the connection name.", connection::client_setname),
        spec("client|getname", 2, CONN, NONE, &["@slow", "@connection"], "connection", "2.6.9", "Returns the name of the connection.", connection::client_getname),
        spec("client|setinfo", 4, CONN, NONE, &["@slow", "@connection"], "connection", "7.2.0", "Sets information specific to the client or connection.", connection::client_setinfo),
        spec("client|list", -2, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "2.4.0", "Lists open connections.", connection::client_list),
        spec("client|info", 2, CONN, NONE, &["@slow", "@connection"], "connection", "6.2.0", "Returns information about the connection.", connection::client_info),
        spec("client|kill", -3, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "2.4.0", "Terminates open connections.", connection::client_kill),
        spec("client|pause", -3, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "3.0.0", "Suspends commands processing.", connection::client_pause),
        spec("client|unpause", 2, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "6.2.0", "Resumes processing commands from paused clients.", connection::client_unpause),
        spec("client|reply", 3, CONN, NONE, &["@slow", "@connection"], "connection", "3.2.0", "Instructs the server whether to reply to commands.", connection::client_reply),
        spec("client|no-evict", 3, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "7.0.0", "Sets the client eviction mode of the connection.", connection::client_no_evict),
        spec("client|no-touch", 3, CONN, NONE, &["@slow", "@connection"], "connection", "7.2.0", "Controls whether commands sent by the client affect the LRU/LFU of accessed keys.", connection::client_no_touch),
        spec("client|unblock", -3, ADMIN_CONN, NONE, &["@admin", "@dangerous", "@connection"], "connection", "5.0.0", "Unblocks a client blocked by a blocking command from a different connection.", connection::client_unblock),
        spec("client|getredir", 2, CONN, NONE, &["@slow", "@connection"], "connection", "6.0.0", "Returns the client ID to which the connection's tracking notifications are redirected.", connection::client_getredir),
        spec("client|help", 2, CONN, NONE, &["@slow", "@connection"], "connection", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    spec("reset", 1, CONN | NO_AUTH, NONE, &["@connection"], "connection", "6.2.0", "Resets the connection.", connection::reset),
    // Transactions.
    spec("multi", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, &["@transaction"], "transactions", "1.2.0", "Starts a transaction.", multi::multi),
    spec("exec", 1, NOSCRIPT | LOADING | STALE, NONE, &["@transaction"], "transactions", "1.2.0", "Executes all commands in a transaction.", multi::exec),
    spec("discard", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, &["@transaction"], "transactions", "2.0.0", "Discards a transaction.", multi::discard),
    spec("watch", -2, NOSCRIPT | LOADING | STALE | FAST, ALL, &["@transaction"], "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction.", multi::watch),
    spec("unwatch", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, &["@transaction"], "transactions", "2.2.0", "Forgets about watched keys of a transaction.", multi::unwatch),
    // Pub/sub.
    spec("subscribe", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.0.0", "Listens for messages published to channels.", pubsub::subscribe),
    spec("unsubscribe", -1, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.0.0", "Stops listening to messages posted to channels.", pubsub::unsubscribe),
    spec("psubscribe", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.0.0", "Listens for messages published to channels that match one or more patterns.", pubsub::psubscribe),
    spec("punsubscribe", -1, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.0.0", "Stops listening to messages published to channels that match one or more patterns.", pubsub::punsubscribe),
    spec("ssubscribe", -2, PUBSUB, ALL, &["@pubsub"], "pubsub", "7.0.0", "Listens for messages published to shard channels.", pubsub::ssubscribe),
    spec("sunsubscribe", -1, PUBSUB, ALL, &["@pubsub"], "pubsub", "7.0.0", "Stops listening to messages posted to shard channels.", pubsub::sunsubscribe),
    spec("publish", 3, PUBSUB | FAST, NONE, &["@pubsub"], "pubsub", "2.0.0", "Posts a message to a channel.", pubsub::publish),
    spec("spublish", 3, PUBSUB | FAST, ONE, &["@pubsub"], "pubsub", "7.0.0", "Post a message to a shard channel", pubsub::spublish),
    container("pubsub", "pubsub", "2.8.0", "A container for Pub/Sub commands.", &[
        spec("pubsub|channels", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.8.0", "Returns the active channels.", pubsub::channels),
        spec("pubsub|numsub", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.8.0", "Returns a count of subscribers to channels.", pubsub::numsub),
        spec("pubsub|numpat", 2, PUBSUB, NONE, &["@pubsub"], "pubsub", "2.8.0", "Returns a count of unique pattern subscriptions.", pubsub::numpat),
        spec("pubsub|shardchannels", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "7.0.0", "Returns the active shard channels.", pubsub::channels),
        spec("pubsub|shardnumsub", -2, PUBSUB, NONE, &["@pubsub"], "pubsub", "7.0.0", "Returns the count of subscribers of shard channels.", pubsub::numsub),
        spec("pubsub|help", 2, LOADING | STALE, NONE, &[], "pubsub", "6.2.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Strings.
    spec("get", 2, READONLY | FAST, ONE, &["@read", "@string"], "string", "1.0.0", "Returns the string value of a key.", strings::get),
    spec("set", -3, WRITE | DENYOOM, ONE, &["@write", "@string"], "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", strings::set),
    spec("incr", 2, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Increments the integer value of a key by one.", strings::incr),
    spec("decr", 2, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Decrements the integer value of a key by one.", strings::decr),
    spec("incrby", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Increments the integer value of a key by a number.", strings::incrby),
    spec("decrby", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Decrements a number from the integer value of a key.", strings::decrby),
    spec("mget", -2, READONLY | FAST, ALL, &["@read", "@string"], "string", "1.0.0", "Atomically returns the string values of one or more keys.", strings::mget),
    spec("mset", -3, WRITE | DENYOOM, PAIRS, &["@write", "@string"], "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", strings::mset),
    spec("append", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", strings::append),
    spec("strlen", 2, READONLY | FAST, ONE, &["@read", "@string"], "string", "2.2.0", "Returns the length of a string value.", strings::strlen),
    spec("getrange", 4, READONLY, ONE, &["@read", "@string"], "string", "2.4.0", "Returns a substring of the string stored at a key.", strings::getrange),
    spec("substr", 4, READONLY, ONE, &["@read", "@string"], "string", "1.0.0", "Returns a substring from a string value.", strings::getrange),
    spec("getset", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", strings::getset),
    spec("setrange", 4, WRITE | DENYOOM, ONE, &["@write", "@string"], "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", strings::setrange),
    spec("getdel", 2, WRITE | FAST, ONE, &["@write", "@string"], "string", "6.2.0", "Returns the string value of a key after deleting the key.", strings::getdel),
    spec("getex", -2, WRITE | FAST, ONE, &["@write", "@string"], "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", strings::getex),
    spec("setnx", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", strings::setnx),
    spec("setex", 4, WRITE | DENYOOM, ONE, &["@write", "@string"], "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", strings::setex),
    spec("psetex", 4, WRITE | DENYOOM, ONE, &["@write", "@string"], "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", strings::psetex),
    spec("msetnx", -3, WRITE | DENYOOM, PAIRS, &["@write", "@string"], "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", strings::msetnx),
    spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string"], "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrbyfloat),
    spec("lcs", -3, READONLY, (1, 2, 1), &["@read", "@string"], "string", "7.0.0", "Finds the longest common substring.", strings::lcs),
    // Bits.
    spec("setbit", 4, WRITE | DENYOOM, ONE, &["@write", "@bitmap"], "bitmap", "2.2.0", "Sets or clears the bit at offset of the string value. Creates the key if it doesn't exist.", bits::setbit),
    spec("getbit", 3, READONLY | FAST, ONE, &["@read", "@bitmap"], "bitmap", "2.2.0", "Returns a bit value by offset.", bits::getbit),
    spec("bitcount", -2, READONLY, ONE, &["@read", "@bitmap"], "bitmap", "2.6.0", "Counts the number of set bits (population counting) in a string.", bits::bitcount),
    spec("bitpos", -3, READONLY, ONE, &["@read", "@bitmap"], "bitmap", "2.8.7", "Finds the first set (1) or clear (0) bit in a string.", bits::bitpos),
    spec("bitop", -4, WRITE | DENYOOM, (2, -1, 1), &["@write", "@bitmap"], "bitmap", "2.6.0", "Performs bitwise operations on multiple strings, and stores the result.", bits::bitop),
    spec("bitfield", -2, WRITE | DENYOOM, ONE, &["@write", "@bitmap"], "bitmap", "3.2.0", "Performs arbitrary bitfield integer operations on strings.", bits::bitfield),
    spec("bitfield_ro", -2, READONLY | FAST, ONE, &["@read", "@bitmap"], "bitmap", "6.0.0", "Performs arbitrary read-only bitfield integer operations on strings.", bits::bitfield_ro),
    // Generic keyspace.
    spec("del", -2, WRITE, ALL, &["@keyspace", "@write"], "generic", "1.0.0", "Deletes one or more keys.", keys::del),
    spec("unlink", -2, WRITE | FAST, ALL, &["@keyspace", "@write"], "generic", "4.0.0", "Asynchronously deletes one or more keys.", keys::del),
    spec("exists", -2, READONLY | FAST, ALL, &["@keyspace", "@read"], "generic", "1.0.0", "Determines whether one or more keys exist.", keys::exists),
    spec("expire", -3, WRITE | FAST, ONE, &["@keyspace", "@write"], "generic", "1.0.0", "Sets the expiration time of a key in seconds.", keys::expire),
    spec("pexpire", -3, WRITE | FAST, ONE, &["@keyspace", "@write"], "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", keys::pexpire),
    spec("ttl", 2, READONLY | FAST, ONE, &["@keyspace", "@read"], "generic", "1.0.0", "Returns the expiration time in seconds of a key.", keys::ttl),
    spec("pttl", 2, READONLY | FAST, ONE, &["@keyspace", "@read"], "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", keys::pttl),
    spec("persist", 2, WRITE | FAST, ONE, &["@keyspace", "@write"], "generic", "2.2.0", "Removes the expiration time of a key.", keys::persist),
    spec("expireat", -3, WRITE | FAST, ONE, &["@keyspace", "@write"], "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", keys::expireat),
    spec("pexpireat", -3, WRITE | FAST, ONE, &["@keyspace", "@write"], "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keys::pexpireat),
    spec("expiretime", 2, READONLY | FAST, ONE, &["@keyspace", "@read"], "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", keys::expiretime),
    spec("pexpiretime", 2, READONLY | FAST, ONE, &["@keyspace", "@read"], "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keys::pexpiretime),
    spec("sort", -2, WRITE | DENYOOM, (1, SORT_STORE, 0), &["@write", "@set", "@sortedset", "@list", "@dangerous"], "generic", "1.0.0", "Sorts the elements in a list, a set, or a sorted set, optionally storing the result.", sort::sort),
    spec("sort_ro", -2, READONLY, ONE, &["@read", "@set", "@sortedset", "@list", "@dangerous"], "generic", "7.0.0", "Returns the sorted elements of a list, a set, or a sorted set.", sort::sort_ro),
    spec("type", 2, READONLY | FAST, ONE, &["@keyspace", "@read"], "generic", "1.0.0", "Determines the type of value stored at a key.", keys::type_),
    spec("touch", -2, READONLY | FAST, ALL, &["@keyspace", "@read"], "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys::touch),
    spec("rename", 3, WRITE, (1, 2, 1), &["@keyspace", "@write"], "generic", "1.0.0", "Renames a key and overwrites the destination.", keys::rename),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), &["@keyspace", "@write"], "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", keys::renamenx),
    spec("dump", 2, READONLY, ONE, &["@keyspace", "@read"], "generic", "2.6.0", "Returns a serialized representation of the value stored at a key.", keys::dump),
    spec("restore", -4, WRITE | DENYOOM, ONE, &["@keyspace", "@write", "@dangerous"], "generic", "2.6.0", "Creates a key from the serialized representation of a value.", keys::restore),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), &["@keyspace", "@write"], "generic", "6.2.0", "Copies the value of a key to a new key.", keys::copy),
    spec("keys", 2, READONLY, NONE, &["@keyspace", "@read", "@dangerous"], "generic", "1.0.0", "Returns all key names that match a pattern.", keys::keys),
    spec("scan", -2, READONLY, NONE, &["@keyspace", "@read"], "generic", "2.8.0", "Iterates over the key names in the database.", keys::scan),
    container("object", "generic", "2.2.3", "A container for object introspection commands.", &[
        spec("object|encoding", 3, READONLY, (2, 2, 1), &["@keyspace", "@read"], "generic", "2.2.3", "Returns the internal encoding of a Redis object.", keys::object_encoding),
        spec("object|freq", 3, READONLY, (2, 2, 1), &["@keyspace", "@read"], "generic", "4.0.0", "Returns the logarithmic access frequency counter of a Redis object.", keys::object_freq),
        spec("object|idletime", 3, READONLY, (2, 2, 1), &["@keyspace", "@read"], "generic", "2.2.3", "Returns the time since the last access to a Redis object.", keys::object_idletime),
        spec("object|refcount", 3, READONLY, (2, 2, 1), &["@keyspace", "@read"], "generic", "2.2.3", "Returns the reference count of a value of a key.", keys::object_refcount),
        spec("object|help", 2, LOADING | STALE, NONE, &["@keyspace"], "generic", "6.2.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    spec("randomkey", 1, READONLY, NONE, &["@keyspace", "@read"], "generic", "1.0.0", "Returns a random key name from the database.", keys::randomkey),
    spec("dbsize", 1, READONLY | FAST, NONE, &["@keyspace", "@read"], "server", "1.0.0", "Returns the number of keys in the database.", keys::dbsize),
    spec("flushall", -1, WRITE, NONE, &["@keyspace", "@write", "@dangerous"], "server", "1.0.0", "Removes all keys from all databases.", keys::flushall),
    spec("flushdb", -1, WRITE, NONE, &["@keyspace", "@write", "@dangerous"], "server", "1.0.0", "Remove all keys from the current database.", keys::flushall),
    // Hashes.
    spec("hset", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash"], "hash", "2.0.0", "Creates or modifies the value of a field in a hash.", hashes::hset),
    spec("hmset", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash"], "hash", "2.0.0", "Sets the values of multiple fields.", hashes::hset),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash"], "hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist.", hashes::hsetnx),
    spec("hget", 3, READONLY | FAST, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns the value of a field in a hash.", hashes::hget),
    spec("hmget", -3, READONLY | FAST, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns the values of all fields in a hash.", hashes::hmget),
    spec("hdel", -3, WRITE | FAST, ONE, &["@write", "@hash"], "hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", hashes::hdel),
    spec("hlen", 2, READONLY | FAST, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns the number of fields in a hash.", hashes::hlen),
    spec("hexists", 3, READONLY | FAST, ONE, &["@read", "@hash"], "hash", "2.0.0", "Determines whether a field exists in a hash.", hashes::hexists),
    spec("hstrlen", 3, READONLY | FAST, ONE, &["@read", "@hash"], "hash", "3.2.0", "Returns the length of the value of a field.", hashes::hstrlen),
    spec("hgetall", 2, READONLY, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns all fields and values in a hash.", hashes::hgetall),
    spec("hkeys", 2, READONLY, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns all fields in a hash.", hashes::hkeys),
    spec("hvals", 2, READONLY, ONE, &["@read", "@hash"], "hash", "2.0.0", "Returns all values in a hash.", hashes::hvals),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash"], "hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", hashes::hincrby),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash"], "hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", hashes::hincrbyfloat),
    spec("hrandfield", -2, READONLY, ONE, &["@read", "@hash"], "hash", "6.2.0", "Returns one or more random fields from a hash.", hashes::hrandfield),
    spec("hscan", -3, READONLY, ONE, &["@read", "@hash"], "hash", "2.8.0", "Iterates over fields and values of a hash.", hashes::hscan),
    // Lists.
    spec("lpush", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list"], "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", lists::lpush),
    spec("rpush", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list"], "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.", lists::rpush),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list"], "list", "2.2.0", "Prepends one or more elements to a list only when the list exists.", lists::lpushx),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list"], "list", "2.2.0", "Appends an element to a list only when the list exists.", lists::rpushx),
    spec("lpop", -2, WRITE | FAST, ONE, &["@write", "@list"], "list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", lists::lpop),
    spec("rpop", -2, WRITE | FAST, ONE, &["@write", "@list"], "list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", lists::rpop),
    spec("llen", 2, READONLY | FAST, ONE, &["@read", "@list"], "list", "1.0.0", "Returns the length of a list.", lists::llen),
    spec("lindex", 3, READONLY, ONE, &["@read", "@list"], "list", "1.0.0", "Returns an element from a list by its index.", lists::lindex),
    spec("lset", 4, WRITE | DENYOOM, ONE, &["@write", "@list"], "list", "1.0.0", "Sets the value of an element in a list by its index.", lists::lset),
    spec("lrange", 4, READONLY, ONE, &["@read", "@list"], "list", "1.0.0", "Returns a range of elements from a list.", lists::lrange),
    spec("ltrim", 4, WRITE, ONE, &["@write", "@list"], "list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", lists::ltrim),
    spec("lrem", 4, WRITE, ONE, &["@write", "@list"], "list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed.", lists::lrem),
    spec("linsert", 5, WRITE | DENYOOM, ONE, &["@write", "@list"], "list", "2.2.0", "Inserts an element before or after another element in a list.", lists::linsert),
    spec("lpos", -3, READONLY, ONE, &["@read", "@list"], "list", "6.0.6", "Returns the index of matching elements in a list.", lists::lpos),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), &["@write", "@list"], "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", lists::lmove),
    spec("blpop", -3, WRITE | BLOCKING, (1, -2, 1), &["@write", "@list", "@blocking"], "list", "2.0.0", "Removes and returns the first element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", blocking::blpop),
    spec("brpop", -3, WRITE | BLOCKING, (1, -2, 1), &["@write", "@list", "@blocking"], "list", "2.0.0", "Removes and returns the last element in a list. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", blocking::brpop),
    spec("blmove", 6, WRITE | DENYOOM | BLOCKING, (1, 2, 1), &["@write", "@list", "@blocking"], "list", "6.2.0", "Pops an element from a list, pushes it to another list and returns it. Blocks until an element is available otherwise. Deletes the list if the last element was moved.", blocking::blmove),
    spec("brpoplpush", 4, WRITE | DENYOOM | BLOCKING, (1, 2, 1), &["@write", "@list", "@blocking"], "list", "2.2.0", "Pops an element from a list, pushes it to another list and returns it. Block until an element is available otherwise. Deletes the list if the last element was popped.", blocking::brpoplpush),
    spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), &["@write", "@list"], "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", lists::rpoplpush),
    spec("lmpop", -4, WRITE, numkeys(1), &["@write", "@list"], "list", "7.0.0", "Returns multiple elements from a list after removing them. Deletes the list if the last element was popped.", lists::lmpop),
    spec("blmpop", -5, WRITE | BLOCKING, numkeys(2), &["@write", "@list", "@blocking"], "list", "7.0.0", "Pops the first element from one of multiple lists. Blocks until an element is available otherwise. Deletes the list if the last element was popped.", blocking::blmpop),
    // Sets.
    spec("sadd", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@set"], "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist.", sets::sadd),
    spec("srem", -3, WRITE | FAST, ONE, &["@write", "@set"], "set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed.", sets::srem),
    spec("smembers", 2, READONLY, ONE, &["@read", "@set"], "set", "1.0.0", "Returns all members of a set.", sets::smembers),
    spec("sismember", 3, READONLY | FAST, ONE, &["@read", "@set"], "set", "1.0.0", "Determines whether a member belongs to a set.", sets::sismember),
    spec("smismember", -3, READONLY | FAST, ONE, &["@read", "@set"], "set", "6.2.0", "Determines whether multiple members belong to a set.", sets::smismember),
    spec("scard", 2, READONLY | FAST, ONE, &["@read", "@set"], "set", "1.0.0", "Returns the number of members in a set.", sets::scard),
    spec("spop", -2, WRITE | FAST, ONE, &["@write", "@set"], "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", sets::spop),
    spec("srandmember", -2, READONLY, ONE, &["@read", "@set"], "set", "1.0.0", "Get one or multiple random members from a set", sets::srandmember),
    spec("sinter", -2, READONLY, ALL, &["@read", "@set"], "set", "1.0.0", "Returns the intersect of multiple sets.", sets::sinter),
    spec("sunion", -2, READONLY, ALL, &["@read", "@set"], "set", "1.0.0", "Returns the union of multiple sets.", sets::sunion),
    spec("sdiff", -2, READONLY, ALL, &["@read", "@set"], "set", "1.0.0", "Returns the difference of multiple sets.", sets::sdiff),
    spec("sinterstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set"], "set", "1.0.0", "Stores the intersect of multiple sets in a key.", sets::sinterstore),
    spec("sunionstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set"], "set", "1.0.0", "Stores the union of multiple sets in a key.", sets::sunionstore),
    spec("sdiffstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set"], "set", "1.0.0", "Stores the difference of multiple sets in a key.", sets::sdiffstore),
    spec("sintercard", -3, READONLY, numkeys(1), &["@read", "@set"], "set", "7.0.0", "Returns the number of members of the intersect of multiple sets.", sets::sintercard),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), &["@write", "@set"], "set", "1.0.0", "Moves a member from one set to another.", sets::smove),
    spec("sscan", -3, READONLY, ONE, &["@read", "@set"], "set", "2.8.0", "Iterates over members of a set.", sets::sscan),
    // Sorted sets.
    spec("zadd", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@sortedset"], "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", zsets::zadd),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@sortedset"], "sorted-set", "1.2.0", "Increments the score of a member in a sorted set.", zsets::zincrby),
    spec("zscore", 3, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "1.2.0", "Returns the score of a member in a sorted set.", zsets::zscore),
    spec("zmscore", -3, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set.", zsets::zmscore),
    spec("zcard", 2, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "1.2.0", "Returns the number of members in a sorted set.", zsets::zcard),
    spec("zcount", 4, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", zsets::zcount),
    spec("zlexcount", 4, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", zsets::zlexcount),
    spec("zrange", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes.", zsets::zrange),
    spec("zrevrange", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order.", zsets::zrevrange),
    spec("zrangebyscore", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores.", zsets::zrangebyscore),
    spec("zrevrangebyscore", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.", zsets::zrevrangebyscore),
    spec("zrangebylex", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range.", zsets::zrangebylex),
    spec("zrevrangebylex", -4, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", zsets::zrevrangebylex),
    spec("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), &["@write", "@sortedset"], "sorted-set", "6.2.0", "Stores a range of members from sorted set in a key.", zsets::zrangestore),
    spec("zrank", -3, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", zsets::zrank),
    spec("zrevrank", -3, READONLY | FAST, ONE, &["@read", "@sortedset"], "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", zsets::zrevrank),
    spec("zrem", -3, WRITE | FAST, ONE, &["@write", "@sortedset"], "sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", zsets::zrem),
    spec("zremrangebyrank", 4, WRITE, ONE, &["@write", "@sortedset"], "sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", zsets::zremrangebyrank),
    spec("zremrangebyscore", 4, WRITE, ONE, &["@write", "@sortedset"], "sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", zsets::zremrangebyscore),
    spec("zremrangebylex", 4, WRITE, ONE, &["@write", "@sortedset"], "sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", zsets::zremrangebylex),
    spec("zpopmin", -2, WRITE | FAST, ONE, &["@write", "@sortedset"], "sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zsets::zpopmin),
    spec("zpopmax", -2, WRITE | FAST, ONE, &["@write", "@sortedset"], "sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zsets::zpopmax),
    spec("zrandmember", -2, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "6.2.0", "Returns one or more random members from a sorted set.", zsets::zrandmember),
    spec("bzpopmin", -3, WRITE | FAST | BLOCKING, (1, -2, 1), &["@write", "@sortedset", "@blocking"], "sorted-set", "5.0.0", "Removes and returns the member with the lowest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", blocking::bzpopmin),
    spec("bzpopmax", -3, WRITE | FAST | BLOCKING, (1, -2, 1), &["@write", "@sortedset", "@blocking"], "sorted-set", "5.0.0", "Removes and returns the member with the highest score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", blocking::bzpopmax),
    spec("zunion", -3, READONLY, numkeys(1), &["@read", "@sortedset"], "sorted-set", "6.2.0", "Returns the union of multiple sorted sets.", zsets::zunion),
    spec("zinter", -3, READONLY, numkeys(1), &["@read", "@sortedset"], "sorted-set", "6.2.0", "Returns the intersect of multiple sorted sets.", zsets::zinter),
    spec("zdiff", -3, READONLY, numkeys(1), &["@read", "@sortedset"], "sorted-set", "6.2.0", "Returns the difference between multiple sorted sets.", zsets::zdiff),
    spec("zunionstore", -4, WRITE | DENYOOM, STORE_NUMKEYS, &["@write", "@sortedset"], "sorted-set", "2.0.0", "Stores the union of multiple sorted sets in a key.", zsets::zunionstore),
    spec("zinterstore", -4, WRITE | DENYOOM, STORE_NUMKEYS, &["@write", "@sortedset"], "sorted-set", "2.0.0", "Stores the intersect of multiple sorted sets in a key.", zsets::zinterstore),
    spec("zdiffstore", -4, WRITE | DENYOOM, STORE_NUMKEYS, &["@write", "@sortedset"], "sorted-set", "6.2.0", "Stores the difference of multiple sorted sets in a key.", zsets::zdiffstore),
    spec("zintercard", -3, READONLY, numkeys(1), &["@read", "@sortedset"], "sorted-set", "7.0.0", "Returns the number of members of the intersect of multiple sorted sets.", zsets::zintercard),
    spec("zmpop", -4, WRITE, numkeys(1), &["@write", "@sortedset"], "sorted-set", "7.0.0", "Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", zsets::zmpop),
    spec("bzmpop", -5, WRITE | BLOCKING, numkeys(2), &["@write", "@sortedset", "@blocking"], "sorted-set", "7.0.0", "Removes and returns a member by score from one or more sorted sets. Blocks until a member is available otherwise. Deletes the sorted set if the last element was popped.", blocking::bzmpop),
    spec("zscan", -3, READONLY, ONE, &["@read", "@sortedset"], "sorted-set", "2.8.0", "Iterates over members and scores of a sorted set.", zsets::zscan),
    // HyperLogLog.
    spec("pfadd", -2, WRITE | DENYOOM | FAST, ONE, &["@write", "@hyperloglog"], "hyperloglog", "2.8.9", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", hll::pfadd),
    spec("pfcount", -2, READONLY, ALL, &["@read", "@hyperloglog"], "hyperloglog", "2.8.9", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", hll::pfcount),
    spec("pfmerge", -2, WRITE | DENYOOM, ALL, &["@write", "@hyperloglog"], "hyperloglog", "2.8.9", "Merges one or more HyperLogLog values into a single key.", hll::pfmerge),
    // Server.
    // Replication.
    spec("wait", 3, NOSCRIPT | BLOCKING, NONE, &["@connection"], "generic", "3.0.0", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed.", repl::wait),
    spec("role", 1, NOSCRIPT | LOADING | STALE | FAST, NONE, &["@admin", "@dangerous"], "server", "2.8.12", "Returns the replication role.", repl::role),
    spec("readonly", 1, LOADING | STALE | FAST, NONE, &["@connection"], "cluster", "3.0.0", "Enables read-only queries for a connection to a Redis Cluster replica node.", repl::readonly),
    spec("readwrite", 1, LOADING | STALE | FAST, NONE, &["@connection"], "cluster", "3.0.0", "Enables read-write queries for a connection to a Redis Cluster replica node.", repl::readwrite),
    spec("replicaof", 3, ADMIN | NOSCRIPT | STALE, NONE, &["@admin", "@dangerous"], "server", "5.0.0", "Configures a server as replica of another, or promotes it to a master.", repl::replicaof),
    spec("slaveof", 3, ADMIN | NOSCRIPT | STALE, NONE, &["@admin", "@dangerous"], "server", "1.0.0", "Sets a Redis server as a replica of another, or promotes it to being a master.", repl::replicaof),
    spec("save", 1, NOSCRIPT, NONE, &["@admin", "@dangerous"], "server", "1.0.0", "Synchronously saves the database(s) to disk.", server::save),
    spec("bgsave", -1, NOSCRIPT, NONE, &["@admin", "@dangerous"], "server", "1.0.0", "Asynchronously saves the database(s) to disk.", server::bgsave),
    spec("lastsave", 1, LOADING | STALE | FAST, NONE, &["@admin", "@dangerous"], "server", "1.0.0", "Returns the Unix timestamp of the last successful save to disk.", server::lastsave),
    spec("time", 1, LOADING | STALE | FAST, NONE, &[], "server", "2.6.0", "Returns the server time.", server::time),
    spec("info", -1, LOADING | STALE, NONE, &["@dangerous"], "server", "1.0.0", "Returns information and statistics about the server.", server::info),
    container("slowlog", "server", "2.2.12", "A container for slow log commands.", &[
        spec("slowlog|get", -2, LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.2.12", "Returns the slow log's entries.", slowlog::get),
        spec("slowlog|len", 2, LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.2.12", "Returns the number of entries in the slow log.", slowlog::len),
        spec("slowlog|reset", 2, LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.2.12", "Clears all entries from the slow log.", slowlog::reset),
        spec("slowlog|help", 2, LOADING | STALE, NONE, &[], "server", "6.2.0", "Show helpful text about the different subcommands", server::container_help),
    ]),
    container("memory", "server", "4.0.0", "A container for memory diagnostics commands.", &[
        spec("memory|usage", -3, READONLY, (2, 2, 1), &["@read"], "server", "4.0.0", "Estimates the memory usage of a key.", slowlog::usage),
        spec("memory|stats", 2, 0, NONE, &[], "server", "4.0.0", "Returns details about memory usage.", slowlog::stats),
        spec("memory|doctor", 2, 0, NONE, &[], "server", "4.0.0", "Outputs a memory problems report.", slowlog::doctor),
        spec("memory|malloc-stats", 2, 0, NONE, &[], "server", "4.0.0", "Returns the allocator statistics.", slowlog::malloc_stats),
        spec("memory|purge", 2, 0, NONE, &[], "server", "4.0.0", "Asks the allocator to release memory.", slowlog::purge),
        spec("memory|help", 2, LOADING | STALE, NONE, &[], "server", "4.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    command_container(&[
        spec("command|count", 2, LOADING | STALE, NONE, &["@connection"], "server", "2.8.13", "Returns a count of commands.", server::command_count),
        spec("command|info", -2, LOADING | STALE, NONE, &["@connection"], "server", "2.8.13", "Returns information about one, multiple or all commands.", server::command_info),
        spec("command|docs", -2, LOADING | STALE, NONE, &["@connection"], "server", "7.0.0", "Returns documentary information about one, multiple or all commands.", server::command_docs),
        spec("command|list", -2, LOADING | STALE, NONE, &["@connection"], "server", "7.0.0", "Returns a list of command names.", server::command_list),
        spec("command|getkeys", -3, LOADING | STALE, NONE, &["@connection"], "server", "2.8.13", "Extracts the key names from an arbitrary command.", server::command_getkeys),
        spec("command|help", 2, LOADING | STALE, NONE, &["@connection"], "server", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    container("config", "server", "2.0.0", "A container for server configuration commands.", &[
        spec("config|get", -3, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.0.0", "Returns the effective values of configuration parameters.", server::config_get),
        spec("config|set", -4, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.0.0", "Sets configuration parameters in-flight.", server::config_set),
        spec("config|resetstat", 2, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "2.0.0", "Resets the server's statistics.", server::config_resetstat),
        spec("config|help", 2, LOADING | STALE, NONE, &[], "server", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Cluster.
    container("cluster", "cluster", "3.0.0", "A container for Redis Cluster commands.", &[
        spec("cluster|keyslot", 3, STALE, NONE, &[], "cluster", "3.0.0", "Returns the hash slot for a key.", cluster::keyslot),
        spec("cluster|myid", 2, STALE, NONE, &[], "cluster", "3.0.0", "Returns the ID of a node.", cluster::myid),
        spec("cluster|info", 2, STALE, NONE, &[], "cluster", "3.0.0", "Returns information about the state of a node.", cluster::info),
        spec("cluster|slots", 2, LOADING | STALE, NONE, &[], "cluster", "3.0.0", "Returns the mapping of cluster slots to nodes.", cluster::slots),
        spec("cluster|shards", 2, LOADING | STALE, NONE, &[], "cluster", "7.0.0", "Returns the mapping of cluster slots to shards.", cluster::shards),
        spec("cluster|nodes", 2, LOADING | STALE, NONE, &[], "cluster", "3.0.0", "Returns the cluster configuration for a node.", cluster::nodes),
        spec("cluster|countkeysinslot", 3, STALE, NONE, &[], "cluster", "3.0.0", "Returns the number of keys in a hash slot.", cluster::countkeysinslot),
        spec("cluster|getkeysinslot", 4, STALE, NONE, &[], "cluster", "3.0.0", "Returns the key names in a hash slot.", cluster::getkeysinslot),
        spec("cluster|help", 2, LOADING | STALE, NONE, &[], "cluster", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Tidecache administration (the operator's channel; admin user only).
    container("tidecache", "server", "0.1.0", "Tidecache administration commands, for the operator.", &[
        nested(spec("tidecache|topology", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Installs (SET json), returns (GET) or reports the epoch (EPOCH) of the topology document.", admin::syntax), &[
            spec("tidecache|topology|set", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Installs a topology document (JSON) unless the node holds a newer epoch.", admin::topology_set),
            spec("tidecache|topology|get", 3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns the topology document the node runs with, or nil.", admin::topology_get),
            spec("tidecache|topology|epoch", 3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns the epoch of the node's topology document (0 without one).", admin::topology_epoch),
        ]),
        nested(spec("tidecache|migrate", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Starts (START id host port epoch range...), reports (STATUS [id]) or cancels (CANCEL id) a slot migration from this node.", admin::syntax), &[
            spec("tidecache|migrate|start", -8, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Starts moving slot ranges to another primary under a new epoch.", migrate::start),
            spec("tidecache|migrate|status", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns how one migration, or every one remembered, stands.", migrate::status),
            spec("tidecache|migrate|cancel", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Stops a migration before its handoff; the target drops its copy.", migrate::cancel),
        ]),
        nested(spec("tidecache|import", -4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "The stream a migrating node sends its target (BEGIN, APPLY, COMMIT, ABORT, STATUS).", admin::syntax), &[
            spec("tidecache|import|begin", -6, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Opens an import of slot ranges, dropping stale keys in them.", migrate::import_begin),
            spec("tidecache|import|apply", 5, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Applies a batch of the change stream, whole or not at all.", migrate::import_apply),
            spec("tidecache|import|commit", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Takes the imported slots under the migration's epoch.", migrate::import_commit),
            spec("tidecache|import|abort", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Drops what an import received; an unknown one may never begin.", migrate::import_abort),
            spec("tidecache|import|status", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns how an import stands: importing, committed, aborted or unknown.", migrate::import_status),
        ]),
        nested(spec("tidecache|repl", -4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "The stream a replica pulls from its primary (PSYNC, SNAPSHOT, FETCH).", repl::syntax), &[
            spec("tidecache|repl|psync", 8, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Continues a replica from its offset, or starts a full sync.", repl::psync),
            spec("tidecache|repl|snapshot", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns the next part of a full sync's snapshot.", repl::snapshot),
            spec("tidecache|repl|fetch", 6, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns the stream from an offset, waiting a while for something to send.", repl::fetch),
        ]),
        nested(spec("tidecache|lease", -4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "The operator's hold on a primary's writes (RENEW epoch [clock], WAIVE or FENCE epoch).", repl::lease_syntax), &[
            spec("tidecache|lease|renew", -4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Keeps the primary's write lease, up to a clock reading when given.", repl::lease_renew),
            spec("tidecache|lease|waive", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Lets a just-promoted primary write without waiting for its old primary's lease.", repl::lease_waive),
            spec("tidecache|lease|fence", 4, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Holds the primary's writes for a switchover; returns the stream's end.", repl::lease_fence),
        ]),
        spec("tidecache|slotstats", -2, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin"], "server", "0.1.0", "Returns slot, keys and estimated bytes of every slot holding keys and, with LOAD, the commands and CPU time each recently served (what the operator balances).", migrate::slot_stats),
        nested(spec("tidecache|snapshot", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Snapshots the node's slots into its snapshot store (START id object) or reports the last snapshot (STATUS).", admin::syntax), &[
            spec("tidecache|snapshot|start", 5, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Starts a fork-less snapshot of the node's slots into an object of its store.", admin::snapshot_start),
            spec("tidecache|snapshot|status", 3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns how the last snapshot stands, or nil.", admin::snapshot_status),
        ]),
        nested(spec("tidecache|restore", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Loads snapshot objects, keeping the node's slots (START id snapshot|- object...), or reports the last restore (STATUS).", admin::syntax), &[
            spec("tidecache|restore|start", -6, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Empties the node and loads snapshot objects, keeping the keys of its slots.", admin::restore_start),
            spec("tidecache|restore|status", 3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@dangerous"], "server", "0.1.0", "Returns how the last restore stands, or nil.", admin::restore_status),
        ]),
        spec("tidecache|help", 2, LOADING | STALE, NONE, &[], "server", "0.1.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_found_in_any_case() {
        for spec in COMMANDS {
            assert!(spec.name.len() <= NAME_MAX && spec.name == spec.name.to_lowercase());
            for name in [spec.name.to_string(), spec.name.to_uppercase()] {
                assert!(std::ptr::eq(
                    lookup(COMMANDS, name.as_bytes()).unwrap(),
                    spec
                ));
            }
            for sub in spec.subcommands {
                let short = sub.short_name().to_uppercase();
                assert!(std::ptr::eq(
                    lookup(spec.subcommands, short.as_bytes()).unwrap(),
                    sub
                ));
            }
        }
        assert!(lookup(COMMANDS, b"nosuchcommand").is_none());
        assert!(lookup(COMMANDS, &[b'g'; 100]).is_none());
        assert!(lookup(COMMANDS, b"").is_none());
        let client = lookup(COMMANDS, b"client").unwrap();
        // A tail of a subcommand's name is not its name.
        assert!(lookup(client.subcommands, b"d").is_none());
        assert!(lookup(client.subcommands, b"client|id").is_none());
    }
}
