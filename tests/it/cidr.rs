//! CIDR parsing and matching for `ip_allow`, through the public API.

use std::net::IpAddr;

use tokengate::core::cidr::Cidr;

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn block(text: &str) -> Cidr {
    Cidr::parse(text).unwrap()
}

#[test]
fn ipv4_blocks_match_their_range_only() {
    let net = block("10.0.0.0/8");
    assert!(net.contains(ip("10.0.0.1")));
    assert!(net.contains(ip("10.255.255.255")));
    assert!(!net.contains(ip("11.0.0.0")));
    assert!(!net.contains(ip("9.255.255.255")));
    let net = block("192.168.1.64/26");
    assert!(net.contains(ip("192.168.1.64")));
    assert!(net.contains(ip("192.168.1.127")));
    assert!(!net.contains(ip("192.168.1.128")));
    assert!(!net.contains(ip("192.168.1.63")));
}

#[test]
fn bare_addresses_are_single_hosts() {
    let one = block("203.0.113.7");
    assert_eq!(one.to_string(), "203.0.113.7/32");
    assert!(one.contains(ip("203.0.113.7")));
    assert!(!one.contains(ip("203.0.113.8")));
    let six = block("2001:db8::1");
    assert_eq!(six.to_string(), "2001:db8::1/128");
    assert!(six.contains(ip("2001:db8::1")));
    assert!(!six.contains(ip("2001:db8::2")));
}

#[test]
fn ipv6_blocks_match_their_range_only() {
    let net = block("2001:db8::/32");
    assert!(net.contains(ip("2001:db8:ffff::1")));
    assert!(!net.contains(ip("2001:db9::1")));
    assert!(!net.contains(ip("10.0.0.1")));
    let odd = block("fe80::/10");
    assert!(odd.contains(ip("febf::1")));
    assert!(!odd.contains(ip("fec0::1")));
}

#[test]
fn zero_prefix_matches_every_address_of_its_family_only() {
    let all4 = block("0.0.0.0/0");
    assert!(all4.contains(ip("255.255.255.255")));
    assert!(all4.contains(ip("0.0.0.0")));
    assert!(!all4.contains(ip("2001:db8::1")));
    let all6 = block("::/0");
    assert!(all6.contains(ip("ffff::1")));
    assert!(!all6.contains(ip("127.0.0.1")));
}

#[test]
fn ipv4_mapped_peers_match_ipv4_blocks() {
    let net = block("127.0.0.0/8");
    assert!(net.contains(ip("::ffff:127.0.0.1")));
    assert!(!net.contains(ip("::ffff:128.0.0.1")));
}

#[test]
fn host_bits_are_cleared_and_display_is_canonical() {
    assert_eq!(block("10.1.2.3/8").to_string(), "10.0.0.0/8");
    assert_eq!(block("172.16.0.0/12").to_string(), "172.16.0.0/12");
    assert_eq!(block("2001:DB8:0:0::1/64").to_string(), "2001:db8::/64");
    assert_eq!(block("192.168.1.255/31").to_string(), "192.168.1.254/31");
}

#[test]
fn malformed_blocks_are_rejected_naming_the_text() {
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
