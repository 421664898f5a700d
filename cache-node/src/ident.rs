//! What the node tells clients about itself, and the random ids it makes
//! (run ids, replication ids, node ids without a configured name).

/// The Redis version whose command semantics the node follows. Clients use it
/// to decide which commands and options they may send.
pub const REDIS_VERSION: &str = "7.2.0";

/// `n` random lowercase hex characters (run ids, node ids).
pub fn random_hex(n: usize) -> String {
    use rand::Rng as _;
    let mut rng = rand::rng();
    (0..n)
        .map(|_| char::from_digit(rng.random_range(0..16), 16).expect("hex digit"))
        .collect()
}
