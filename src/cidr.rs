//! CIDR blocks for a profile's `ip_allow` list: parsing (`10.0.0.0/8`, `2001:db8::/32`, a bare address) and matching.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IPv4 or IPv6 network: an address with its host bits cleared, and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Cidr {
    /// The network address, host bits zero.
    network: IpAddr,
    /// Leading bits that must match: 0..=32 for IPv4, 0..=128 for IPv6.
    prefix: u8,
}

/// Why a text is not a CIDR block; the message never needs more context than the text itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CidrError {
    /// One human sentence.
    message: String,
}

impl fmt::Display for CidrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CidrError {}

impl Cidr {
    /// Parses `addr/prefix` or a bare address (a `/32` or `/128`).
    ///
    /// Host bits after the prefix are cleared, as Go's `net.ParseCIDR` and nginx's `allow` do:
    /// `10.1.2.3/8` is the network `10.0.0.0/8`.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let fail = |why: &str| CidrError {
            message: format!("{text:?} is not a CIDR block ({why})"),
        };
        let (addr_text, prefix_text) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let addr = IpAddr::from_str(addr_text).map_err(|_| {
            fail("expected an IPv4 or IPv6 address such as 10.0.0.0/8 or 2001:db8::/32")
        })?;
        let max = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        let prefix = match prefix_text {
            None => max,
            Some(p) => {
                // Digits only: `u8::from_str` would also take a leading `+`.
                if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(fail("the prefix length must be a number"));
                }
                let value: u8 = p
                    .parse()
                    .map_err(|_| fail("the prefix length must be a number"))?;
                if value > max {
                    return Err(fail(&format!("the prefix length is at most {max}")));
                }
                value
            }
        };
        Ok(Cidr {
            network: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` lies in this network. An IPv4-mapped IPv6 peer (`::ffff:a.b.c.d`, as a
    /// dual-stack socket reports IPv4 clients) is matched as its IPv4 address.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            _ => ip,
        };
        match (self.network, ip) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => {
                mask(ip, self.prefix) == self.network
            }
            _ => false,
        }
    }

    /// The network address (host bits zero).
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix
    }
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Cidr::parse(text)
    }
}

/// Canonical form: `network/prefix`, always with the prefix.
impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// `addr` with every bit after the first `prefix` bits cleared.
fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(bits & keep))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(bits & keep))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ipv4_blocks_match_their_range_only() {
        let net = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(net.contains(ip("10.0.0.1")));
        assert!(net.contains(ip("10.255.255.255")));
        assert!(!net.contains(ip("11.0.0.0")));
        assert!(!net.contains(ip("9.255.255.255")));
        let net = Cidr::parse("192.168.1.64/26").unwrap();
        assert!(net.contains(ip("192.168.1.64")));
        assert!(net.contains(ip("192.168.1.127")));
        assert!(!net.contains(ip("192.168.1.128")));
        assert!(!net.contains(ip("192.168.1.63")));
    }

    #[test]
    fn bare_addresses_are_single_hosts() {
        let one = Cidr::parse("203.0.113.7").unwrap();
        assert_eq!(one.prefix_len(), 32);
        assert!(one.contains(ip("203.0.113.7")));
        assert!(!one.contains(ip("203.0.113.8")));
        let six = Cidr::parse("2001:db8::1").unwrap();
        assert_eq!(six.prefix_len(), 128);
        assert!(six.contains(ip("2001:db8::1")));
        assert!(!six.contains(ip("2001:db8::2")));
    }

    #[test]
    fn ipv6_blocks_match_their_range_only() {
        let net = Cidr::parse("2001:db8::/32").unwrap();
        assert!(net.contains(ip("2001:db8:ffff::1")));
        assert!(!net.contains(ip("2001:db9::1")));
        assert!(!net.contains(ip("10.0.0.1")));
        let odd = Cidr::parse("fe80::/10").unwrap();
        assert!(odd.contains(ip("febf::1")));
        assert!(!odd.contains(ip("fec0::1")));
    }

    #[test]
    fn zero_prefix_matches_every_address_of_its_family() {
        let all4 = Cidr::parse("0.0.0.0/0").unwrap();
        assert!(all4.contains(ip("255.255.255.255")));
        assert!(all4.contains(ip("0.0.0.0")));
        assert!(!all4.contains(ip("::1")));
        let all6 = Cidr::parse("::/0").unwrap();
        assert!(all6.contains(ip("ffff::1")));
        assert!(!all6.contains(ip("127.0.0.1")));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_blocks() {
        let net = Cidr::parse("127.0.0.0/8").unwrap();
        assert!(net.contains(ip("::ffff:127.0.0.1")));
        assert!(!net.contains(ip("::ffff:128.0.0.1")));
    }

    #[test]
    fn host_bits_are_cleared_and_display_is_canonical() {
        let net = Cidr::parse("10.1.2.3/8").unwrap();
        assert_eq!(net.network(), ip("10.0.0.0"));
        assert_eq!(net.to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("1.2.3.4").unwrap().to_string(), "1.2.3.4/32");
        assert_eq!(
            Cidr::parse("2001:DB8:0:0::1/64").unwrap().to_string(),
            "2001:db8::/64"
        );
        let round: Cidr = "172.16.0.0/12".parse().unwrap();
        assert_eq!(round.to_string(), "172.16.0.0/12");
    }

    #[test]
    fn malformed_blocks_are_rejected_with_the_text() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "10.0.0.0/8/8",
            "10.0.0/8",
            "10.0.0.256",
            "010.0.0.1",
            "::/129",
            "::1/0128",
            "fe80::1%eth0",
            " 10.0.0.0/8",
            "10.0.0.0 /8",
            "example.com",
            "10.0.0.0/8x",
        ] {
            let err = Cidr::parse(bad).unwrap_err();
            assert!(
                err.to_string().contains(&format!("{bad:?}")),
                "{bad}: {err}"
            );
        }
    }
}
