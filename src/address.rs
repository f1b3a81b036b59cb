//! Addresses a request the server makes on a user's behalf (a webhook delivery, an RTSP pull)
//! must not reach unless the operator allows it: loopback, private, link-local and the special
//! ranges that lead there (NAT64 and 6to4 of such an address, IPv4-compatible IPv6). And whose
//! address a request is, behind the operator's trusted proxies.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is in the block (an IPv4-mapped IPv6 address counts as its IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = IpAddr::from_str(addr)
            .map_err(|_| format!("{s:?} is not an address or address/prefix"))?
            .to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix must be 0..={max}"))?,
        };
        Ok(Cidr { addr, prefix })
    }
}

impl TryFrom<String> for Cidr {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> String {
        format!("{}/{}", c.addr, c.prefix)
    }
}

/// The client a request comes from. The peer, unless it is one of the operator's `trusted`
/// proxies: then `X-Forwarded-For` (its values in order, each a comma-separated list) is read
/// from the right, past the trusted proxies, and the first address that is not one is the
/// client. Everything left of it was written by the client and is ignored; an entry that is not
/// an address stops the walk at the last address read.
pub fn client_address<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = peer.to_canonical();
    if !is_trusted(peer) {
        return peer;
    }
    let hops: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    // Bounded by the header size limit of the server; the walk stops at the first client.
    for hop in hops.iter().rev() {
        let Ok(ip) = IpAddr::from_str(hop.trim()) else {
            break;
        };
        client = ip.to_canonical();
        if !is_trusted(client) {
            break;
        }
    }
    client
}

/// Why a URL's host may not be connected to ([`resolve_public`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRefusal {
    /// It does not resolve, or to no address.
    Unresolved,
    /// One of its addresses is loopback, private, link-local or otherwise not public.
    Private(IpAddr),
}

/// Resolves a URL's `host` (an IPv6 literal may keep its brackets) on `port`, and unless
/// `allow_private` refuses it when any of its addresses is not public: the one rule of webhooks,
/// RTSP pulls and simulcast destinations (a creator must not make the server connect into its
/// own network).
pub async fn resolve_public(
    host: &str,
    port: u16,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, HostRefusal> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
        .await
        .map_err(|_| HostRefusal::Unresolved)?
        .collect();
    if addrs.is_empty() {
        return Err(HostRefusal::Unresolved);
    }
    match addrs.iter().find(|a| is_private(a.ip())) {
        Some(a) if !allow_private => Err(HostRefusal::Private(a.ip())),
        _ => Ok(addrs),
    }
}

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

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn address_blocks_parse_and_contain() {
        let c = |s: &str| s.parse::<Cidr>();
        assert!(
            c("10.0.0.0/8")
                .unwrap()
                .contains("10.255.0.1".parse().unwrap())
        );
        assert!(
            !c("10.0.0.0/8")
                .unwrap()
                .contains("11.0.0.1".parse().unwrap())
        );
        assert!(
            c("10.0.0.0/8")
                .unwrap()
                .contains("::ffff:10.0.0.1".parse().unwrap())
        );
        assert!(c("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(!c("0.0.0.0/0").unwrap().contains("::1".parse().unwrap()));
        assert!(
            c("2001:db8::/32")
                .unwrap()
                .contains("2001:db8:1::1".parse().unwrap())
        );
        assert!(c("::/0").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert!(
            c("127.0.0.1")
                .unwrap()
                .contains("127.0.0.1".parse().unwrap())
        );
        assert!(
            !c("127.0.0.1")
                .unwrap()
                .contains("127.0.0.2".parse().unwrap())
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(c(bad).is_err(), "{bad}");
        }
        assert_eq!(String::from(c("10.1.2.3/8").unwrap()), "10.1.2.3/8");
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_proxies() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let client =
            |peer: &str, xff: &[&str]| client_address(ip(peer), xff.iter().copied(), &trusted);
        // An untrusted peer is the client, whatever it writes.
        assert_eq!(client("203.0.113.9", &["1.2.3.4"]), ip("203.0.113.9"));
        assert_eq!(client("203.0.113.9", &[]), ip("203.0.113.9"));
        // Behind the proxy: the rightmost address that is not a trusted proxy.
        assert_eq!(client("127.0.0.1", &["1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(client("127.0.0.1", &["6.6.6.6, 1.2.3.4"]), ip("1.2.3.4"));
        assert_eq!(
            client("127.0.0.1", &["6.6.6.6", "1.2.3.4, 10.0.0.2"]),
            ip("1.2.3.4")
        );
        assert_eq!(
            client("::ffff:127.0.0.1", &["2001:db8::1"]),
            ip("2001:db8::1")
        );
        // No header, nothing usable, or only proxies: the last address read.
        assert_eq!(client("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(client("127.0.0.1", &["garbage"]), ip("127.0.0.1"));
        assert_eq!(
            client("127.0.0.1", &["1.2.3.4, garbage, 10.0.0.3"]),
            ip("10.0.0.3")
        );
        assert_eq!(client("127.0.0.1", &["10.0.0.1"]), ip("10.0.0.1"));
        // No trusted proxies (the default): the header means nothing.
        assert_eq!(
            client_address(ip("127.0.0.1"), ["1.2.3.4"], &[]),
            ip("127.0.0.1")
        );
    }

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
