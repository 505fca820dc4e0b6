//! Sets of IP networks (CIDRs) for trusted proxies and allow/deny lists.
//!
//! Networks are merged into sorted, non-overlapping ranges at load time, so a lookup is a binary
//! search whatever the list size.

use std::net::IpAddr;

use ipnet::IpNet;

/// A compiled set of networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSet {
    /// Parses CIDRs (`10.0.0.0/8`) and single addresses (`192.0.2.1`, `::1`).
    ///
    /// Returns the index and message of every entry that does not parse.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
    ) -> Result<IpSet, Vec<(usize, String)>> {
        let mut nets = Vec::new();
        let mut errors = Vec::new();
        for (i, e) in entries.into_iter().enumerate() {
            match parse_net(e) {
                Ok(n) => nets.push(n),
                Err(m) => errors.push((i, m)),
            }
        }
        if errors.is_empty() {
            Ok(IpSet::from_nets(&nets))
        } else {
            Err(errors)
        }
    }

    /// Builds the set from parsed networks.
    pub fn from_nets(nets: &[IpNet]) -> IpSet {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for n in nets {
            match n {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpSet {
            v4: merge(v4),
            v6: merge(v6),
        }
    }

    /// Whether `ip` is inside any network; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match ip {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => find(&self.v4, u32::from(v4)),
                None => find(&self.v6, u128::from(a)),
            },
        }
    }

    /// True when the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }
}

/// Parses one CIDR or address.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(n) = t.parse::<IpNet>() {
        return Ok(n.trunc());
    }
    if let Ok(a) = t.parse::<IpAddr>() {
        return Ok(IpNet::from(a));
    }
    Err(format!(
        "{t:?} is not an IP address or CIDR such as \"10.0.0.0/8\""
    ))
}

fn merge<T: Ord + Copy + num_like::Succ>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        if let Some(last) = out.last_mut() {
            if lo <= last.1.succ_saturating() {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|(lo, _)| *lo <= x);
    i > 0 && x <= ranges[i - 1].1
}

mod num_like {
    pub trait Succ {
        fn succ_saturating(self) -> Self;
    }
    impl Succ for u32 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
    impl Succ for u128 {
        fn succ_saturating(self) -> Self {
            self.saturating_add(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn membership() {
        let s = IpSet::parse(["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.0.0/16"]).unwrap();
        assert!(s.contains(ip("10.2.3.4")));
        assert!(s.contains(ip("192.0.2.7")));
        assert!(!s.contains(ip("192.0.2.8")));
        assert!(s.contains(ip("2001:db8::1")));
        assert!(!s.contains(ip("2001:db9::1")));
        assert!(s.contains(ip("::ffff:10.0.0.1")));
        assert!(!s.contains(ip("11.0.0.0")));
        assert!(!IpSet::default().contains(ip("127.0.0.1")));
    }

    #[test]
    fn adjacent_ranges_merge_and_bad_entries_are_named() {
        let s = IpSet::parse(["10.0.0.0/25", "10.0.0.128/25"]).unwrap();
        assert_eq!(s.v4.len(), 1);
        let errs = IpSet::parse(["10.0.0.0/8", "nope", "300.1.1.1"]).unwrap_err();
        assert_eq!(errs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
    }
}
