#!/usr/bin/env python3
"""Writes the seed inputs of the `keyspace` fuzz target to seeds/keyspace/.

An input is a head byte (policy: allkeys-lru, or volatile-lru when its
two low bits are set; maxmemory-samples 1, 5 or 64 by (head >> 2) % 3)
and then operations, each a selector byte (taken modulo 64) and its
fields. Keys here are always spelled as new keys (a first byte without
its high bit: the variant in its two low bits, then a length byte), so a
seed names the same keys however the model orders them. See
fuzz_targets/keyspace.rs for the whole encoding.
"""

import os

HERE = os.path.dirname(os.path.abspath(__file__))

# Index of each length in VALUE_LENS = [0, 1, 254, 255, 256, 1000].
LEN_INDEX = {0: 0, 1: 1, 254: 2, 255: 3, 256: 4, 1000: 5}
# Deadline bytes (modulo 12): none, 0 (stored as 1), now - 1, now,
# now + 1, now + 5, now + 1000, now + 3600000, u64::MAX.
DEADLINE = {None: 0, "zero": 4, "past": 5, "now": 6, 1: 7, 5: 8, 1000: 9,
            3_600_000: 10, "max": 11}
ADVANCES = [0, 1, 2, 3, 4, 5, 100, 1000, 60_000, 3_600_000]
BUDGETS = {0: 0, 1: 1, 2: 2, 3: 3, 16: 4, "all": 5}


def key(length, variant=0):
    """A short key: `length` (0..=40) bytes of 'a' + variant; variants 2
    and 3 start with the hash tag {t} (one slot for all of them)."""
    assert 0 <= length <= 40 and 0 <= variant <= 3
    return bytes([variant, length])


def long_key(extra, tagged=False):
    """A key of 65534 + extra bytes (extra 0..=6) of 'L', or of 'M' after
    the hash tag {t}. An input has at most 3 distinct long keys: past
    those, this names a short key."""
    assert 0 <= extra <= 6
    # The length is 65534 + byte % 7; the byte's high bit picks 'M'.
    return bytes([0x7F, 128 + (extra - 2) % 7 if tagged else extra])


def string(length, seed=0):
    b = LEN_INDEX[length] + 6 * seed
    assert b < 0xF0
    return bytes([b])


def items(*lengths):
    """A list value of 1..=3 elements."""
    assert 1 <= len(lengths) <= 3
    return bytes([0xF0 + len(lengths) - 1]) + b"".join(string(n) for n in lengths)


def set_(k, v, deadline=None):
    return bytes([0]) + k + v + bytes([DEADLINE[deadline]])


def replace(k, v):
    return bytes([12]) + k + v


def append(k, length_index):
    """Appends APPEND_LENS[i] = [0, 1, 2, 100, 255, 256][i] bytes."""
    return bytes([16]) + k + bytes([length_index])


def push(k, length, left=False):
    return bytes([20]) + k + bytes([0 if left else 1]) + string(length)


def pop(k, left=False):
    return bytes([24]) + k + bytes([0 if left else 1])


def set_deadline(k, deadline):
    return bytes([26]) + k + bytes([DEADLINE[deadline]])


def rename(a, b):
    return bytes([30]) + a + b


def remove(k):
    return bytes([33]) + k


def get(k):
    return bytes([37]) + k


def advance(ms):
    return bytes([41, ADVANCES.index(ms)])


def expire_due(budget):
    return bytes([46, BUDGETS[budget]])


def flush():
    return bytes([49, 0])


def evict():
    return bytes([50])


def random_key():
    return bytes([54])


def capture_all():
    return bytes([55, 0])


def capture_around(k, width=0):
    return bytes([55, 6 + 8 * width]) + k


def step(index=0, budget=1):
    return bytes([58, index, BUDGETS[budget]])


def cancel(index=0):
    return bytes([63, index])


a, b, c = key(1), key(5), key(40)
t1, t2 = key(3, 2), key(9, 3)

SEEDS = {
    "shapes": bytes([0])
    + b"".join(set_(key(k), string(n, 1)) for k, n in ((0, 0), (1, 1), (30, 254)))
    + set_(key(7, 1), string(255), 1000)
    + set_(key(2, 1), string(256), "max")
    + set_(key(3, 1), string(1000), 3_600_000)
    + capture_all()
    + set_(c, string(254)) + append(c, 1) + append(c, 1) + append(c, 0)
    + step(0, 16)
    + replace(c, string(1)) + replace(c, items(254, 1000))
    + set_deadline(key(1), 5) + set_deadline(key(1), None)
    + rename(key(1), key(3, 1)) + get(key(3, 1))
    + step(0, "all"),
    "long-keys": bytes([0])
    + set_(long_key(0), string(1))
    + set_(long_key(1), string(256), 1000)
    + set_(long_key(1, True), string(255))
    + set_(t1, items(0, 1))
    + capture_all()
    + rename(long_key(1), a)
    + rename(a, long_key(0))
    + append(long_key(0), 4)
    + step(0, "all")
    + remove(long_key(1, True)),
    "expiry-eviction": bytes([4])
    + set_(a, string(1), 1) + set_(b, string(256), 5) + set_(c, string(0), 1000)
    + set_(t1, string(255)) + set_(t2, string(1), "zero")
    + advance(2) + capture_all() + expire_due(1) + step(0, 1)
    + advance(5) + random_key() + evict() + get(t1) + evict()
    + advance(3_600_000) + evict() + expire_due("all") + step(0, "all"),
    "volatile": bytes([3 + 8])
    + set_(a, string(1), 1000) + set_(b, string(1)) + set_(t1, string(1), "max")
    + advance(100) + evict() + evict() + evict(),
    "lists-captures": bytes([0])
    + push(t1, 1) + push(t1, 256, left=True) + push(t2, 1000)
    + capture_around(t1) + capture_all()
    + pop(t1) + pop(t1) + pop(t1)
    + set_(t2, string(254)) + push(t2, 1)
    + step(1, 1) + flush() + step(0, 1) + step(0, 1)
    + push(a, 0) + capture_all() + cancel(0),
}


def main():
    out = os.path.join(HERE, "keyspace")
    os.makedirs(out, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
