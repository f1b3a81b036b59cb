//! Addresses a request the server makes on a user's behalf (a webhook delivery, an RTSP pull)
//! must not reach unless the operator allows it: loopback, private, link-local and the special
//! ranges that lead there (NAT64 and 6to4 of such an address, IPv4-compatible IPv6).
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Whether `ip` is loopback, private, link-local or otherwise not a public unicast address.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_private_v4(v4),
        IpAddr::V6(v6) => is_private_v6(v6),
    }
}

/// The unit per-client limits count in: an IPv4 address, or an IPv6 /64 (one subscriber's usual
/// allocation, so that one client cannot step through its own addresses).
pub fn client_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
        },
        v4 => v4,
    }
}

fn is_private_v4(v4: Ipv4Addr) -> bool {
    let [a, b, ..] = v4.octets();
    v4.is_loopback()
        || v4.is_private()
        || v4.is_link_local()
        || v4.is_broadcast()
        || v4.is_multicast()
        || v4.is_documentation()
        // 0.0.0.0/8, "this network"
        || a == 0
        // 100.64.0.0/10, carrier-grade NAT
        || (a == 100 && (b & 0xc0) == 64)
        // 198.18.0.0/15, benchmarking
        || (a == 198 && (b & 0xfe) == 18)
        // 240.0.0.0/4, reserved
        || a >= 240
}

fn is_private_v6(v6: Ipv6Addr) -> bool {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return is_private_v4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    // 64:ff9b::/96, NAT64 of an IPv4 address
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return is_private_v4(embedded(s[6], s[7]));
    }
    // 2002::/16, 6to4 of an IPv4 address
    if s[0] == 0x2002 {
        return is_private_v4(embedded(s[1], s[2]));
    }
    v6.is_loopback()
        || v6.is_unspecified()
        || v6.is_multicast()
        // ::/96, IPv4-compatible (deprecated)
        || s[..6] == [0; 6]
        // 64:ff9b:1::/48, local-use NAT64
        || s[..3] == [0x64, 0xff9b, 1]
        // fc00::/7 unique local
        || (s[0] & 0xfe00) == 0xfc00
        // fe80::/10 link-local, fec0::/10 site-local (deprecated)
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clients_are_grouped_by_ipv4_address_and_ipv6_64() {
        let g = |s: &str| client_group(s.parse().unwrap());
        assert_eq!(g("2001:db8::1"), g("2001:db8::ffff:1"));
        assert_ne!(g("2001:db8::1"), g("2001:db8:0:1::1"));
        assert_eq!(g("::ffff:10.0.0.1"), g("10.0.0.1"));
        assert_ne!(g("10.0.0.1"), g("10.0.0.2"));
    }

    #[test]
    fn private_and_special_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "0.1.2.3",
            "100.64.0.1",
            "198.18.0.1",
            "198.19.255.255",
            "240.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "::10.0.0.1",
            "::8.8.8.8",
            "fd00::1",
            "fe80::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "198.20.0.1",
            "2606:4700::1111",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
