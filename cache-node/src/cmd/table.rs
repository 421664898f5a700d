//! The command table.

use super::flags::*;
use super::{
    Handler, admin, cluster, connection, hashes, keys, lists, server, sets, strings, zsets,
};

/// One command as data.
pub struct Spec {
    /// Lowercase; subcommands are written `container|sub`.
    pub name: &'static str,
    /// Exact argument count including the name; negative means "at least".
    pub arity: i32,
    pub flags: u32,
    /// First key, last key (negative counts from the end), step; 0s for none.
    pub keys: (i32, i32, i32),
    pub acl: &'static [&'static str],
    pub group: &'static str,
    pub since: &'static str,
    pub summary: &'static str,
    pub run: Handler,
    pub subcommands: &'static [Spec],
}

impl Spec {
    /// The name as clients type it after the container (`id` for `client|id`).
    pub fn short_name(&self) -> &'static str {
        self.name.rsplit('|').next().unwrap_or(self.name)
    }
}

/// Finds a command by its name, ignoring ASCII case.
pub fn lookup<'a>(table: &'a [Spec], name: &[u8]) -> Option<&'a Spec> {
    table
        .iter()
        .find(|s| s.short_name().as_bytes().eq_ignore_ascii_case(name))
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

#[rustfmt::skip]
pub static COMMANDS: &[Spec] = &[
    // Connection.
    spec("ping", -1, FAST, NONE, &["@fast", "@connection"], "connection", "1.0.0", "Returns the server's liveliness response.", connection::ping),
    spec("echo", 2, FAST, NONE, &["@fast", "@connection"], "connection", "1.0.0", "Returns the given string.", connection::echo),
    spec("hello", -1, CONN | NO_AUTH, NONE, &["@fast", "@connection"], "connection", "6.0.0", "Handshakes with the Redis server.", connection::hello),
    spec("auth", -2, CONN | NO_AUTH, NONE, &["@fast", "@connection"], "connection", "1.0.0", "Authenticates the connection.", connection::auth),
    spec("quit", -1, CONN | NO_AUTH, NONE, &["@fast", "@connection"], "connection", "1.0.0", "Closes the connection.", connection::quit),
    spec("select", 2, CONN, NONE, &["@fast", "@connection"], "connection", "1.0.0", "Changes the selected database.", connection::select),
    container("client", "connection", "2.4.0", "A container for client connection commands.", &[
        spec("client|id", 2, CONN, NONE, &["@slow", "@connection"], "connection", "5.0.0", "Returns the unique client ID of the connection.", connection::client_id),
        spec("client|setname", 3, CONN, NONE, &["@slow", "@connection"], "connection", "2.6.9", "Sets the connection name.", connection::client_setname),
        spec("client|getname", 2, CONN, NONE, &["@slow", "@connection"], "connection", "2.6.9", "Returns the name of the connection.", connection::client_getname),
        spec("client|setinfo", 4, CONN, NONE, &["@slow", "@connection"], "connection", "7.2.0", "Sets information specific to the client or connection.", connection::client_setinfo),
        spec("client|help", 2, CONN, NONE, &["@slow", "@connection"], "connection", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Strings.
    spec("get", 2, READONLY | FAST, ONE, &["@read", "@string", "@fast"], "string", "1.0.0", "Returns the string value of a key.", strings::get),
    spec("set", -3, WRITE | DENYOOM, ONE, &["@write", "@string", "@slow"], "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", strings::set),
    spec("incr", 2, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "1.0.0", "Increments the integer value of a key by one.", strings::incr),
    spec("decr", 2, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "1.0.0", "Decrements the integer value of a key by one.", strings::decr),
    spec("incrby", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "1.0.0", "Increments the integer value of a key by a number.", strings::incrby),
    spec("decrby", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "1.0.0", "Decrements a number from the integer value of a key.", strings::decrby),
    spec("mget", -2, READONLY | FAST, ALL, &["@read", "@string", "@fast"], "string", "1.0.0", "Atomically returns the string values of one or more keys.", strings::mget),
    spec("mset", -3, WRITE | DENYOOM, PAIRS, &["@write", "@string", "@slow"], "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys.", strings::mset),
    spec("append", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", strings::append),
    spec("strlen", 2, READONLY | FAST, ONE, &["@read", "@string", "@fast"], "string", "2.2.0", "Returns the length of a string value.", strings::strlen),
    spec("getrange", 4, READONLY, ONE, &["@read", "@string", "@slow"], "string", "2.4.0", "Returns a substring of the string stored at a key.", strings::getrange),
    spec("setrange", 4, WRITE | DENYOOM, ONE, &["@write", "@string", "@slow"], "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", strings::setrange),
    spec("getdel", 2, WRITE | FAST, ONE, &["@write", "@string", "@fast"], "string", "6.2.0", "Returns the string value of a key after deleting the key.", strings::getdel),
    spec("getex", -2, WRITE | FAST, ONE, &["@write", "@string", "@fast"], "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", strings::getex),
    spec("setnx", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", strings::setnx),
    spec("setex", 4, WRITE | DENYOOM, ONE, &["@write", "@string", "@slow"], "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", strings::setex),
    spec("psetex", 4, WRITE | DENYOOM, ONE, &["@write", "@string", "@slow"], "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", strings::psetex),
    spec("msetnx", -3, WRITE | DENYOOM, PAIRS, &["@write", "@string", "@slow"], "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist.", strings::msetnx),
    spec("incrbyfloat", 3, WRITE | DENYOOM | FAST, ONE, &["@write", "@string", "@fast"], "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrbyfloat),
    // Generic keyspace.
    spec("del", -2, WRITE, ALL, &["@keyspace", "@write", "@slow"], "generic", "1.0.0", "Deletes one or more keys.", keys::del),
    spec("unlink", -2, WRITE | FAST, ALL, &["@keyspace", "@write", "@fast"], "generic", "4.0.0", "Asynchronously deletes one or more keys.", keys::del),
    spec("exists", -2, READONLY | FAST, ALL, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", "Determines whether one or more keys exist.", keys::exists),
    spec("expire", -3, WRITE | FAST, ONE, &["@keyspace", "@write", "@fast"], "generic", "1.0.0", "Sets the expiration time of a key in seconds.", keys::expire),
    spec("pexpire", -3, WRITE | FAST, ONE, &["@keyspace", "@write", "@fast"], "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", keys::pexpire),
    spec("ttl", 2, READONLY | FAST, ONE, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", "Returns the expiration time in seconds of a key.", keys::ttl),
    spec("pttl", 2, READONLY | FAST, ONE, &["@keyspace", "@read", "@fast"], "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", keys::pttl),
    spec("persist", 2, WRITE | FAST, ONE, &["@keyspace", "@write", "@fast"], "generic", "2.2.0", "Removes the expiration time of a key.", keys::persist),
    spec("expireat", -3, WRITE | FAST, ONE, &["@keyspace", "@write", "@fast"], "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", keys::expireat),
    spec("pexpireat", -3, WRITE | FAST, ONE, &["@keyspace", "@write", "@fast"], "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", keys::pexpireat),
    spec("expiretime", 2, READONLY | FAST, ONE, &["@keyspace", "@read", "@fast"], "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", keys::expiretime),
    spec("pexpiretime", 2, READONLY | FAST, ONE, &["@keyspace", "@read", "@fast"], "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", keys::pexpiretime),
    spec("type", 2, READONLY | FAST, ONE, &["@keyspace", "@read", "@fast"], "generic", "1.0.0", "Determines the type of value stored at a key.", keys::type_),
    spec("touch", -2, READONLY | FAST, ALL, &["@keyspace", "@read", "@fast"], "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys::touch),
    spec("rename", 3, WRITE, (1, 2, 1), &["@keyspace", "@write", "@slow"], "generic", "1.0.0", "Renames a key and overwrites the destination.", keys::rename),
    spec("renamenx", 3, WRITE | FAST, (1, 2, 1), &["@keyspace", "@write", "@fast"], "generic", "1.0.0", "Renames a key only when the target key name doesn't exist.", keys::renamenx),
    spec("copy", -3, WRITE | DENYOOM, (1, 2, 1), &["@keyspace", "@write", "@slow"], "generic", "6.2.0", "Copies the value of a key to a new key.", keys::copy),
    spec("keys", 2, READONLY, NONE, &["@keyspace", "@read", "@slow", "@dangerous"], "generic", "1.0.0", "Returns all key names that match a pattern.", keys::keys),
    spec("scan", -2, READONLY, NONE, &["@keyspace", "@read", "@slow"], "generic", "2.8.0", "Iterates over the key names in the database.", keys::scan),
    spec("randomkey", 1, READONLY, NONE, &["@keyspace", "@read", "@slow"], "generic", "1.0.0", "Returns a random key name from the database.", keys::randomkey),
    spec("dbsize", 1, READONLY | FAST, NONE, &["@keyspace", "@read", "@fast"], "server", "1.0.0", "Returns the number of keys in the database.", keys::dbsize),
    spec("flushall", -1, WRITE, NONE, &["@keyspace", "@write", "@slow", "@dangerous"], "server", "1.0.0", "Removes all keys from all databases.", keys::flushall),
    spec("flushdb", -1, WRITE, NONE, &["@keyspace", "@write", "@slow", "@dangerous"], "server", "1.0.0", "Remove all keys from the current database.", keys::flushall),
    // Hashes.
    spec("hset", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.0.0", "Creates or modifies the value of a field in a hash.", hashes::hset),
    spec("hmset", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.0.0", "Sets the values of multiple fields.", hashes::hset),
    spec("hsetnx", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.0.0", "Sets the value of a field in a hash only when the field doesn't exist.", hashes::hsetnx),
    spec("hget", 3, READONLY | FAST, ONE, &["@read", "@hash", "@fast"], "hash", "2.0.0", "Returns the value of a field in a hash.", hashes::hget),
    spec("hmget", -3, READONLY | FAST, ONE, &["@read", "@hash", "@fast"], "hash", "2.0.0", "Returns the values of all fields in a hash.", hashes::hmget),
    spec("hdel", -3, WRITE | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.0.0", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", hashes::hdel),
    spec("hlen", 2, READONLY | FAST, ONE, &["@read", "@hash", "@fast"], "hash", "2.0.0", "Returns the number of fields in a hash.", hashes::hlen),
    spec("hexists", 3, READONLY | FAST, ONE, &["@read", "@hash", "@fast"], "hash", "2.0.0", "Determines whether a field exists in a hash.", hashes::hexists),
    spec("hstrlen", 3, READONLY | FAST, ONE, &["@read", "@hash", "@fast"], "hash", "3.2.0", "Returns the length of the value of a field.", hashes::hstrlen),
    spec("hgetall", 2, READONLY, ONE, &["@read", "@hash", "@slow"], "hash", "2.0.0", "Returns all fields and values in a hash.", hashes::hgetall),
    spec("hkeys", 2, READONLY, ONE, &["@read", "@hash", "@slow"], "hash", "2.0.0", "Returns all fields in a hash.", hashes::hkeys),
    spec("hvals", 2, READONLY, ONE, &["@read", "@hash", "@slow"], "hash", "2.0.0", "Returns all values in a hash.", hashes::hvals),
    spec("hincrby", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.0.0", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", hashes::hincrby),
    spec("hincrbyfloat", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@hash", "@fast"], "hash", "2.6.0", "Increments the floating point value of a field by a number. Uses 0 as initial value if the field doesn't exist.", hashes::hincrbyfloat),
    spec("hrandfield", -2, READONLY, ONE, &["@read", "@hash", "@slow"], "hash", "6.2.0", "Returns one or more random fields from a hash.", hashes::hrandfield),
    // Lists.
    spec("lpush", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list", "@fast"], "list", "1.0.0", "Prepends one or more elements to a list. Creates the key if it doesn't exist.", lists::lpush),
    spec("rpush", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list", "@fast"], "list", "1.0.0", "Appends one or more elements to a list. Creates the key if it doesn't exist.", lists::rpush),
    spec("lpushx", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list", "@fast"], "list", "2.2.0", "Prepends one or more elements to a list only when the list exists.", lists::lpushx),
    spec("rpushx", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@list", "@fast"], "list", "2.2.0", "Appends an element to a list only when the list exists.", lists::rpushx),
    spec("lpop", -2, WRITE | FAST, ONE, &["@write", "@list", "@fast"], "list", "1.0.0", "Returns the first elements in a list after removing it. Deletes the list if the last element was popped.", lists::lpop),
    spec("rpop", -2, WRITE | FAST, ONE, &["@write", "@list", "@fast"], "list", "1.0.0", "Returns and removes the last elements of a list. Deletes the list if the last element was popped.", lists::rpop),
    spec("llen", 2, READONLY | FAST, ONE, &["@read", "@list", "@fast"], "list", "1.0.0", "Returns the length of a list.", lists::llen),
    spec("lindex", 3, READONLY, ONE, &["@read", "@list", "@slow"], "list", "1.0.0", "Returns an element from a list by its index.", lists::lindex),
    spec("lset", 4, WRITE | DENYOOM, ONE, &["@write", "@list", "@slow"], "list", "1.0.0", "Sets the value of an element in a list by its index.", lists::lset),
    spec("lrange", 4, READONLY, ONE, &["@read", "@list", "@slow"], "list", "1.0.0", "Returns a range of elements from a list.", lists::lrange),
    spec("ltrim", 4, WRITE, ONE, &["@write", "@list", "@slow"], "list", "1.0.0", "Removes elements from both ends a list. Deletes the list if all elements were trimmed.", lists::ltrim),
    spec("lrem", 4, WRITE, ONE, &["@write", "@list", "@slow"], "list", "1.0.0", "Removes elements from a list. Deletes the list if the last element was removed.", lists::lrem),
    spec("linsert", 5, WRITE | DENYOOM, ONE, &["@write", "@list", "@slow"], "list", "2.2.0", "Inserts an element before or after another element in a list.", lists::linsert),
    spec("lpos", -3, READONLY, ONE, &["@read", "@list", "@slow"], "list", "6.0.6", "Returns the index of matching elements in a list.", lists::lpos),
    spec("lmove", 5, WRITE | DENYOOM, (1, 2, 1), &["@write", "@list", "@slow"], "list", "6.2.0", "Returns an element after popping it from one list and pushing it to another. Deletes the list if the last element was moved.", lists::lmove),
    spec("rpoplpush", 3, WRITE | DENYOOM, (1, 2, 1), &["@write", "@list", "@slow"], "list", "1.2.0", "Returns the last element of a list after removing and pushing it to another list. Deletes the list if the last element was popped.", lists::rpoplpush),
    // Sets.
    spec("sadd", -3, WRITE | DENYOOM | FAST, ONE, &["@write", "@set", "@fast"], "set", "1.0.0", "Adds one or more members to a set. Creates the key if it doesn't exist.", sets::sadd),
    spec("srem", -3, WRITE | FAST, ONE, &["@write", "@set", "@fast"], "set", "1.0.0", "Removes one or more members from a set. Deletes the set if the last member was removed.", sets::srem),
    spec("smembers", 2, READONLY, ONE, &["@read", "@set", "@slow"], "set", "1.0.0", "Returns all members of a set.", sets::smembers),
    spec("sismember", 3, READONLY | FAST, ONE, &["@read", "@set", "@fast"], "set", "1.0.0", "Determines whether a member belongs to a set.", sets::sismember),
    spec("smismember", -3, READONLY | FAST, ONE, &["@read", "@set", "@fast"], "set", "6.2.0", "Determines whether multiple members belong to a set.", sets::smismember),
    spec("scard", 2, READONLY | FAST, ONE, &["@read", "@set", "@fast"], "set", "1.0.0", "Returns the number of members in a set.", sets::scard),
    spec("spop", -2, WRITE | FAST, ONE, &["@write", "@set", "@fast"], "set", "1.0.0", "Returns one or more random members from a set after removing them. Deletes the set if the last member was popped.", sets::spop),
    spec("srandmember", -2, READONLY, ONE, &["@read", "@set", "@slow"], "set", "1.0.0", "Get one or multiple random members from a set", sets::srandmember),
    spec("sinter", -2, READONLY, ALL, &["@read", "@set", "@slow"], "set", "1.0.0", "Returns the intersect of multiple sets.", sets::sinter),
    spec("sunion", -2, READONLY, ALL, &["@read", "@set", "@slow"], "set", "1.0.0", "Returns the union of multiple sets.", sets::sunion),
    spec("sdiff", -2, READONLY, ALL, &["@read", "@set", "@slow"], "set", "1.0.0", "Returns the difference of multiple sets.", sets::sdiff),
    spec("sinterstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set", "@slow"], "set", "1.0.0", "Stores the intersect of multiple sets in a key.", sets::sinterstore),
    spec("sunionstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set", "@slow"], "set", "1.0.0", "Stores the union of multiple sets in a key.", sets::sunionstore),
    spec("sdiffstore", -3, WRITE | DENYOOM, ALL, &["@write", "@set", "@slow"], "set", "1.0.0", "Stores the difference of multiple sets in a key.", sets::sdiffstore),
    spec("smove", 4, WRITE | FAST, (1, 2, 1), &["@write", "@set", "@fast"], "set", "1.0.0", "Moves a member from one set to another.", sets::smove),
    // Sorted sets.
    spec("zadd", -4, WRITE | DENYOOM | FAST, ONE, &["@write", "@sortedset", "@fast"], "sorted-set", "1.2.0", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", zsets::zadd),
    spec("zincrby", 4, WRITE | DENYOOM | FAST, ONE, &["@write", "@sortedset", "@fast"], "sorted-set", "1.2.0", "Increments the score of a member in a sorted set.", zsets::zincrby),
    spec("zscore", 3, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "1.2.0", "Returns the score of a member in a sorted set.", zsets::zscore),
    spec("zmscore", -3, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "6.2.0", "Returns the score of one or more members in a sorted set.", zsets::zmscore),
    spec("zcard", 2, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "1.2.0", "Returns the number of members in a sorted set.", zsets::zcard),
    spec("zcount", 4, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "2.0.0", "Returns the count of members in a sorted set that have scores within a range.", zsets::zcount),
    spec("zlexcount", 4, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "2.8.9", "Returns the number of members in a sorted set within a lexicographical range.", zsets::zlexcount),
    spec("zrange", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes.", zsets::zrange),
    spec("zrevrange", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "1.2.0", "Returns members in a sorted set within a range of indexes in reverse order.", zsets::zrevrange),
    spec("zrangebyscore", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "1.0.5", "Returns members in a sorted set within a range of scores.", zsets::zrangebyscore),
    spec("zrevrangebyscore", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "2.2.0", "Returns members in a sorted set within a range of scores in reverse order.", zsets::zrevrangebyscore),
    spec("zrangebylex", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range.", zsets::zrangebylex),
    spec("zrevrangebylex", -4, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "2.8.9", "Returns members in a sorted set within a lexicographical range in reverse order.", zsets::zrevrangebylex),
    spec("zrangestore", -5, WRITE | DENYOOM, (1, 2, 1), &["@write", "@sortedset", "@slow"], "sorted-set", "6.2.0", "Stores a range of members from sorted set in a key.", zsets::zrangestore),
    spec("zrank", -3, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by ascending scores.", zsets::zrank),
    spec("zrevrank", -3, READONLY | FAST, ONE, &["@read", "@sortedset", "@fast"], "sorted-set", "2.0.0", "Returns the index of a member in a sorted set ordered by descending scores.", zsets::zrevrank),
    spec("zrem", -3, WRITE | FAST, ONE, &["@write", "@sortedset", "@fast"], "sorted-set", "1.2.0", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", zsets::zrem),
    spec("zremrangebyrank", 4, WRITE, ONE, &["@write", "@sortedset", "@slow"], "sorted-set", "2.0.0", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", zsets::zremrangebyrank),
    spec("zremrangebyscore", 4, WRITE, ONE, &["@write", "@sortedset", "@slow"], "sorted-set", "1.2.0", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", zsets::zremrangebyscore),
    spec("zremrangebylex", 4, WRITE, ONE, &["@write", "@sortedset", "@slow"], "sorted-set", "2.8.9", "Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", zsets::zremrangebylex),
    spec("zpopmin", -2, WRITE | FAST, ONE, &["@write", "@sortedset", "@fast"], "sorted-set", "5.0.0", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zsets::zpopmin),
    spec("zpopmax", -2, WRITE | FAST, ONE, &["@write", "@sortedset", "@fast"], "sorted-set", "5.0.0", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", zsets::zpopmax),
    spec("zrandmember", -2, READONLY, ONE, &["@read", "@sortedset", "@slow"], "sorted-set", "6.2.0", "Returns one or more random members from a sorted set.", zsets::zrandmember),
    // Server.
    spec("time", 1, LOADING | STALE | FAST, NONE, &["@fast"], "server", "2.6.0", "Returns the server time.", server::time),
    spec("info", -1, LOADING | STALE, NONE, &["@slow", "@dangerous"], "server", "1.0.0", "Returns information and statistics about the server.", server::info),
    command_container(&[
        spec("command|count", 2, LOADING | STALE, NONE, &["@slow", "@connection"], "server", "2.8.13", "Returns a count of commands.", server::command_count),
        spec("command|info", -2, LOADING | STALE, NONE, &["@slow", "@connection"], "server", "2.8.13", "Returns information about one, multiple or all commands.", server::command_info),
        spec("command|docs", -2, LOADING | STALE, NONE, &["@slow", "@connection"], "server", "7.0.0", "Returns documentary information about one, multiple or all commands.", server::command_docs),
        spec("command|list", -2, LOADING | STALE, NONE, &["@slow", "@connection"], "server", "7.0.0", "Returns a list of command names.", server::command_list),
        spec("command|help", 2, LOADING | STALE, NONE, &["@slow", "@connection"], "server", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    container("config", "server", "2.0.0", "A container for server configuration commands.", &[
        spec("config|get", -3, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@slow", "@dangerous"], "server", "2.0.0", "Returns the effective values of configuration parameters.", server::config_get),
        spec("config|set", -4, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@slow", "@dangerous"], "server", "2.0.0", "Sets configuration parameters in-flight.", server::config_set),
        spec("config|resetstat", 2, NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@slow", "@dangerous"], "server", "2.0.0", "Resets the server's statistics.", server::config_resetstat),
        spec("config|help", 2, LOADING | STALE, NONE, &["@slow"], "server", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Cluster.
    container("cluster", "cluster", "3.0.0", "A container for Redis Cluster commands.", &[
        spec("cluster|keyslot", 3, STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the hash slot for a key.", cluster::keyslot),
        spec("cluster|myid", 2, STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the ID of a node.", cluster::myid),
        spec("cluster|info", 2, STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns information about the state of a node.", cluster::info),
        spec("cluster|slots", 2, LOADING | STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the mapping of cluster slots to nodes.", cluster::slots),
        spec("cluster|shards", 2, LOADING | STALE, NONE, &["@slow"], "cluster", "7.0.0", "Returns the mapping of cluster slots to shards.", cluster::shards),
        spec("cluster|nodes", 2, LOADING | STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the cluster configuration for a node.", cluster::nodes),
        spec("cluster|countkeysinslot", 3, STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the number of keys in a hash slot.", cluster::countkeysinslot),
        spec("cluster|getkeysinslot", 4, STALE, NONE, &["@slow"], "cluster", "3.0.0", "Returns the key names in a hash slot.", cluster::getkeysinslot),
        spec("cluster|help", 2, LOADING | STALE, NONE, &["@slow"], "cluster", "5.0.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
    // Tidecache administration (the operator's channel; admin user only).
    container("tidecache", "server", "0.1.0", "Tidecache administration commands, for the operator.", &[
        spec("tidecache|topology", -3, ADMIN | NOSCRIPT | LOADING | STALE, NONE, &["@admin", "@slow", "@dangerous"], "server", "0.1.0", "Installs (SET json), returns (GET) or reports the epoch (EPOCH) of the topology document.", admin::topology),
        spec("tidecache|help", 2, LOADING | STALE, NONE, &["@slow"], "server", "0.1.0", "Returns helpful text about the different subcommands.", server::container_help),
    ]),
];
