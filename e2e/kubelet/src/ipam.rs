//! Pod IPs: node i owns 10.244.{i+1}.0/24, .1 is the node itself and pods get
//! .2 to .254. An address is unique while its pod exists; allocation moves
//! round-robin so that a just-freed address (possibly still listed in a
//! stale EndpointSlice) is the last to be handed out again.

use std::collections::HashMap;
use std::net::Ipv4Addr;

pub const FIRST: u8 = 2;
pub const LAST: u8 = 254;

#[derive(Debug)]
pub struct Ipam {
    subnet: [u8; 3],
    by_uid: HashMap<String, u8>,
    next: u8,
}

impl Ipam {
    pub fn new(node_index: usize) -> Self {
        Self {
            subnet: node_subnet(node_index),
            by_uid: HashMap::new(),
            next: FIRST,
        }
    }

    fn addr(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(self.subnet[0], self.subnet[1], self.subnet[2], host)
    }

    /// The pod's address: the one it already has, `preferred` (the address
    /// in its status, after an agent restart) if that is ours and free, or
    /// the next free one.
    pub fn allocate(&mut self, uid: &str, preferred: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if let Some(&h) = self.by_uid.get(uid) {
            return Some(self.addr(h));
        }
        let in_use = |me: &Self, h: u8| me.by_uid.values().any(|&x| x == h);
        if let Some(p) = preferred {
            let o = p.octets();
            if o[..3] == self.subnet && (FIRST..=LAST).contains(&o[3]) && !in_use(self, o[3]) {
                self.by_uid.insert(uid.to_string(), o[3]);
                return Some(p);
            }
        }
        for _ in FIRST..=LAST {
            let h = self.next;
            self.next = if h >= LAST { FIRST } else { h + 1 };
            if !in_use(self, h) {
                self.by_uid.insert(uid.to_string(), h);
                return Some(self.addr(h));
            }
        }
        None
    }

    /// Claims the address a pod already has (from its status), before any
    /// new pod is given one: after an agent restart, running pods keep
    /// their IPs whatever order their workers start in.
    pub fn reserve(&mut self, uid: &str, ip: Ipv4Addr) {
        let o = ip.octets();
        if !self.by_uid.contains_key(uid)
            && o[..3] == self.subnet
            && (FIRST..=LAST).contains(&o[3])
            && !self.by_uid.values().any(|&x| x == o[3])
        {
            self.by_uid.insert(uid.to_string(), o[3]);
        }
    }

    pub fn release(&mut self, uid: &str) {
        self.by_uid.remove(uid);
    }
}

/// The first three octets of node i's pod subnet.
pub fn node_subnet(node_index: usize) -> [u8; 3] {
    [10, 244, (node_index + 1) as u8]
}

pub fn node_ip(node_index: usize) -> Ipv4Addr {
    let s = node_subnet(node_index);
    Ipv4Addr::new(s[0], s[1], s[2], 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocation() {
        let mut ipam = Ipam::new(0);
        assert_eq!(node_ip(0), Ipv4Addr::new(10, 244, 1, 1));
        let a = ipam.allocate("a", None).unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 244, 1, 2));
        assert_eq!(ipam.allocate("a", None), Some(a), "stable per pod");
        let b = ipam.allocate("b", None).unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 244, 1, 3));
        ipam.release("a");
        // Round-robin: the freed .2 is not reused right away.
        assert_eq!(ipam.allocate("c", None), Some(Ipv4Addr::new(10, 244, 1, 4)));
        // A preferred address is honoured when it is ours and free...
        assert_eq!(
            ipam.allocate("d", Some(Ipv4Addr::new(10, 244, 1, 2))),
            Some(Ipv4Addr::new(10, 244, 1, 2))
        );
        // ...but not when taken or foreign.
        assert_eq!(
            ipam.allocate("e", Some(Ipv4Addr::new(10, 244, 1, 3))),
            Some(Ipv4Addr::new(10, 244, 1, 5))
        );
        assert_eq!(
            ipam.allocate("f", Some(Ipv4Addr::new(10, 244, 9, 9))),
            Some(Ipv4Addr::new(10, 244, 1, 6))
        );
    }

    #[test]
    fn reserved_addresses_are_skipped() {
        let mut ipam = Ipam::new(0);
        ipam.reserve("old", Ipv4Addr::new(10, 244, 1, 2));
        ipam.reserve("foreign", Ipv4Addr::new(10, 244, 2, 3));
        assert_eq!(
            ipam.allocate("new", None),
            Some(Ipv4Addr::new(10, 244, 1, 3))
        );
        assert_eq!(
            ipam.allocate("old", Some(Ipv4Addr::new(10, 244, 1, 2))),
            Some(Ipv4Addr::new(10, 244, 1, 2))
        );
    }

    #[test]
    fn exhaustion_and_wraparound() {
        let mut ipam = Ipam::new(2);
        for i in 0..(LAST - FIRST + 1) as usize {
            assert!(ipam.allocate(&i.to_string(), None).is_some());
        }
        assert_eq!(ipam.allocate("full", None), None);
        ipam.release("7");
        assert_eq!(ipam.allocate("x", None), Some(Ipv4Addr::new(10, 244, 3, 9)));
    }
}
