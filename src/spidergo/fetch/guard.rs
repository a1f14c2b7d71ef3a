//! Which addresses SpiderGo may fetch from: the one place that says "public".
//!
//! A crawler fetches what its caller names, so every address it would connect to (an IP literal in
//! a URL or a redirect, or every address a name resolves to) is checked here first. Anything that
//! is not a public unicast address is refused: private, loopback, link-local (cloud metadata at
//! 169.254.169.254), shared, documentation, benchmarking, multicast and reserved ranges, and the
//! IPv6 forms that carry an IPv4 address (IPv4-mapped addresses are unwrapped and judged as IPv4;
//! IPv4-compatible, NAT64, 6to4 and Teredo prefixes are refused whole, since where they lead
//! depends on a gateway we do not see; and no IPv6 address outside 2000::/3, the only space
//! allocated as global unicast, is public). Firecrawl once missed 172.16/12, so every range's first
//! and last address are tested.
//!
//! The operator can allow ranges (`allow_cidrs`: tests, an intranet); nothing in a request can.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use url::{Host, Url};

/// An IPv4 range: network, prefix length, and what it is (for the refusal's message).
struct V4Range(u32, u8, &'static str);
/// An IPv6 range, likewise.
struct V6Range(u128, u8, &'static str);

const fn v4(a: u8, b: u8, c: u8, d: u8) -> u32 {
    u32::from_be_bytes([a, b, c, d])
}

/// IPv4 space that is not public unicast (RFC 6890 and the IANA special-purpose registry).
const BLOCKED_V4: [V4Range; 15] = [
    V4Range(v4(0, 0, 0, 0), 8, "\"this network\" (0.0.0.0/8)"),
    V4Range(v4(10, 0, 0, 0), 8, "private (10.0.0.0/8)"),
    V4Range(
        v4(100, 64, 0, 0),
        10,
        "shared address space (100.64.0.0/10)",
    ),
    V4Range(v4(127, 0, 0, 0), 8, "loopback (127.0.0.0/8)"),
    V4Range(v4(169, 254, 0, 0), 16, "link-local (169.254.0.0/16)"),
    V4Range(v4(172, 16, 0, 0), 12, "private (172.16.0.0/12)"),
    V4Range(
        v4(192, 0, 0, 0),
        24,
        "IETF protocol assignments (192.0.0.0/24)",
    ),
    V4Range(v4(192, 0, 2, 0), 24, "documentation (192.0.2.0/24)"),
    V4Range(
        v4(192, 88, 99, 0),
        24,
        "6to4 relay anycast (192.88.99.0/24)",
    ),
    V4Range(v4(192, 168, 0, 0), 16, "private (192.168.0.0/16)"),
    V4Range(v4(198, 18, 0, 0), 15, "benchmarking (198.18.0.0/15)"),
    V4Range(v4(198, 51, 100, 0), 24, "documentation (198.51.100.0/24)"),
    V4Range(v4(203, 0, 113, 0), 24, "documentation (203.0.113.0/24)"),
    V4Range(v4(224, 0, 0, 0), 4, "multicast (224.0.0.0/4)"),
    V4Range(
        v4(240, 0, 0, 0),
        4,
        "reserved (240.0.0.0/4, with broadcast)",
    ),
];

const fn v6(segments: [u16; 8]) -> u128 {
    let mut value = 0u128;
    let mut i = 0;
    while i < 8 {
        value = (value << 16) | segments[i] as u128;
        i += 1;
    }
    value
}

/// IPv6 space that is not public unicast. `::ffff:0:0/96` is not here: those addresses are
/// unwrapped and judged as IPv4.
const BLOCKED_V6: [V6Range; 13] = [
    V6Range(v6([0, 0, 0, 0, 0, 0, 0, 0]), 128, "unspecified (::)"),
    V6Range(v6([0, 0, 0, 0, 0, 0, 0, 1]), 128, "loopback (::1)"),
    V6Range(
        v6([0, 0, 0, 0, 0, 0, 0, 0]),
        96,
        "IPv4-compatible (::/96, deprecated)",
    ),
    V6Range(
        v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0]),
        96,
        "NAT64 (64:ff9b::/96)",
    ),
    V6Range(
        v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0]),
        48,
        "local-use NAT64 (64:ff9b:1::/48)",
    ),
    V6Range(
        v6([0x100, 0, 0, 0, 0, 0, 0, 0]),
        64,
        "discard-only (100::/64)",
    ),
    V6Range(v6([0x2001, 0, 0, 0, 0, 0, 0, 0]), 32, "Teredo (2001::/32)"),
    V6Range(
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]),
        32,
        "documentation (2001:db8::/32)",
    ),
    V6Range(v6([0x2002, 0, 0, 0, 0, 0, 0, 0]), 16, "6to4 (2002::/16)"),
    V6Range(
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0]),
        7,
        "unique local (fc00::/7)",
    ),
    V6Range(
        v6([0xfe80, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "link-local (fe80::/10)",
    ),
    V6Range(
        v6([0xfec0, 0, 0, 0, 0, 0, 0, 0]),
        10,
        "site-local (fec0::/10, deprecated)",
    ),
    V6Range(v6([0xff00, 0, 0, 0, 0, 0, 0, 0]), 8, "multicast (ff00::/8)"),
];

/// 2000::/3, the only IPv6 space allocated as global unicast.
const GLOBAL_UNICAST: u128 = v6([0x2000, 0, 0, 0, 0, 0, 0, 0]);
const OUTSIDE_GLOBAL_UNICAST: &str = "not global unicast (outside 2000::/3)";

fn in_v4(ip: u32, network: u32, prefix: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    ip & mask == network & mask
}

fn in_v6(ip: u128, network: u128, prefix: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
    ip & mask == network & mask
}

/// The non-public range `ip` falls in, by name; `None` for a public unicast address.
pub fn non_public_range(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => {
            let ip = u32::from(ip);
            BLOCKED_V4
                .iter()
                .find(|V4Range(net, len, _)| in_v4(ip, *net, *len))
                .map(|range| range.2)
        }
        IpAddr::V6(ip) => {
            if let Some(mapped) = ip.to_ipv4_mapped() {
                return non_public_range(IpAddr::V4(mapped));
            }
            let ip = u128::from(ip);
            let named = BLOCKED_V6
                .iter()
                .find(|V6Range(net, len, _)| in_v6(ip, *net, *len))
                .map(|range| range.2);
            // Only 2000::/3 is allocated as global unicast; the rest is special or unassigned.
            named.or_else(|| (!in_v6(ip, GLOBAL_UNICAST, 3)).then_some(OUTSIDE_GLOBAL_UNICAST))
        }
    }
}

/// A CIDR range such as `127.0.0.1/32` or `fd00::/8` (a bare address is its own /32 or /128).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => in_v4(ip.into(), net.into(), self.prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => in_v6(ip.into(), net.into(), self.prefix),
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let text = text.trim();
        let (address, prefix) = text.split_once('/').unwrap_or((text, ""));
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("`{text}` is not a CIDR range (an address, then /prefix)"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            "" => max,
            digits => digits
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// Why a URL or an address may not be fetched; the message is safe to show the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// Only http and https are fetched.
    Scheme(String),
    /// No host, or credentials in the URL.
    Malformed(&'static str),
    /// The address is in a non-public range that `allow_cidrs` does not allow.
    NonPublic { ip: IpAddr, range: &'static str },
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::Scheme(scheme) => {
                write!(
                    f,
                    "only http and https URLs can be fetched, not `{scheme}:`"
                )
            }
            Refused::Malformed(why) => f.write_str(why),
            Refused::NonPublic { ip, range } => {
                write!(f, "url resolves to a non-public address ({ip}: {range})")
            }
        }
    }
}

impl std::error::Error for Refused {}

/// The check every fetch, redirect hop and DNS answer goes through.
#[derive(Debug, Clone, Default)]
pub struct Guard {
    /// Ranges the operator allows although they are not public (never from a request).
    allow: Vec<Cidr>,
}

impl Guard {
    pub fn new(allow: Vec<Cidr>) -> Guard {
        Guard { allow }
    }

    /// Ok for a public address, or one in an allowed range (an IPv4-mapped address counts as
    /// its IPv4 address for both).
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let Some(range) = non_public_range(ip) else {
            return Ok(());
        };
        if self.allow.iter().any(|cidr| cidr.contains(ip)) {
            return Ok(());
        }
        Err(Refused::NonPublic { ip, range })
    }

    /// The checks that need no lookup: http(s), a host, no credentials, and an IP-literal host
    /// (in any form the WHATWG parser accepts: `2130706433`, `0x7f.1`, `0177.0.0.1`) judged by
    /// `check_ip`. A name is checked when it resolves.
    pub fn check_url(&self, url: &Url) -> Result<(), Refused> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Refused::Scheme(url.scheme().to_owned()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(Refused::Malformed(
                "a URL with credentials cannot be fetched",
            ));
        }
        match url.host() {
            None => Err(Refused::Malformed("the URL has no host")),
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip)),
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip)),
            Some(Host::Domain(_)) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|_| panic!("bad address in a test table: {text}"))
    }

    /// For every range: the address before it, its first and last, and the one after, with
    /// what the classifier must say of each.
    #[test]
    fn every_range_boundary_is_classified() {
        let table: &[(&str, bool)] = &[
            // (address, refused)
            ("0.0.0.0", true),
            ("0.255.255.255", true),
            ("1.0.0.0", false),
            ("9.255.255.255", false),
            ("10.0.0.0", true),
            ("10.255.255.255", true),
            ("11.0.0.0", false),
            ("100.63.255.255", false),
            ("100.64.0.0", true),
            ("100.127.255.255", true),
            ("100.128.0.0", false),
            ("126.255.255.255", false),
            ("127.0.0.0", true),
            ("127.0.0.1", true),
            ("127.255.255.255", true),
            ("128.0.0.0", false),
            ("169.253.255.255", false),
            ("169.254.0.0", true),
            ("169.254.169.254", true),
            ("169.254.255.255", true),
            ("169.255.0.0", false),
            ("172.15.255.255", false),
            ("172.16.0.0", true),
            ("172.31.255.255", true),
            ("172.32.0.0", false),
            ("191.255.255.255", false),
            ("192.0.0.0", true),
            ("192.0.0.255", true),
            ("192.0.1.0", false),
            ("192.0.2.0", true),
            ("192.0.2.255", true),
            ("192.0.3.0", false),
            ("192.88.98.255", false),
            ("192.88.99.0", true),
            ("192.88.99.255", true),
            ("192.88.100.0", false),
            ("192.167.255.255", false),
            ("192.168.0.0", true),
            ("192.168.255.255", true),
            ("192.169.0.0", false),
            ("198.17.255.255", false),
            ("198.18.0.0", true),
            ("198.19.255.255", true),
            ("198.20.0.0", false),
            ("198.51.99.255", false),
            ("198.51.100.0", true),
            ("198.51.100.255", true),
            ("198.51.101.0", false),
            ("203.0.112.255", false),
            ("203.0.113.0", true),
            ("203.0.113.255", true),
            ("203.0.114.0", false),
            ("223.255.255.255", false),
            ("224.0.0.0", true),
            ("239.255.255.255", true),
            ("240.0.0.0", true),
            ("255.255.255.255", true),
            ("8.8.8.8", false),
            // IPv6
            ("::", true),
            ("::1", true),
            ("::2", true),
            ("::127.0.0.1", true),
            ("::ffff:ffff", true),
            ("::1:0:0", true),
            ("64:ff9a:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("64:ff9b::", true),
            ("64:ff9b::8.8.8.8", true),
            ("64:ff9b::ffff:ffff", true),
            ("64:ff9b::1:0:0", true),
            ("64:ff9b:1::", true),
            ("64:ff9b:1:ffff:ffff:ffff:ffff:ffff", true),
            ("64:ff9b:2::", true),
            ("ff::ffff", true),
            ("100::", true),
            ("100::ffff:ffff:ffff:ffff", true),
            ("100:0:0:1::", true),
            ("1fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2000::", false),
            ("2000:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001::", true),
            ("2001:0:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:1::", false),
            ("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2001:db8::", true),
            ("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2001:db9::", false),
            ("2001:4860:4860::8888", false),
            ("2001:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("2002::", true),
            ("2002:7f00:1::", true),
            ("2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2003::", false),
            ("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fc00::", true),
            ("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fe00::", true),
            ("fe7f:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fe80::", true),
            ("febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("fec0::", true),
            ("feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("ff00::", true),
            ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", true),
            ("2606:4700::1111", false),
            ("3fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", false),
            ("4000::", true),
            // IPv4-mapped: judged as the IPv4 address inside.
            ("::ffff:127.0.0.1", true),
            ("::ffff:10.0.0.1", true),
            ("::ffff:169.254.169.254", true),
            ("::ffff:8.8.8.8", false),
        ];
        for (text, refused) in table {
            let range = non_public_range(addr(text));
            assert_eq!(range.is_some(), *refused, "{text}: {range:?}");
        }
    }

    #[test]
    fn every_ipv4_spelling_of_loopback_in_a_url_is_refused() {
        let guard = Guard::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://0/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "https://169.254.169.254/latest/meta-data/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::]/",
        ] {
            let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            let refused = guard.check_url(&parsed);
            assert!(
                matches!(refused, Err(Refused::NonPublic { .. })),
                "{url}: {refused:?}"
            );
            assert!(
                refused
                    .as_ref()
                    .err()
                    .is_some_and(|r| r.to_string().starts_with("url resolves to a non-public")),
                "{url}"
            );
        }
    }

    #[test]
    fn only_http_and_https_without_credentials_are_fetched() {
        let guard = Guard::default();
        let check = |url: &str| guard.check_url(&Url::parse(url).expect("test URL"));
        assert_eq!(
            check("file:///etc/passwd"),
            Err(Refused::Scheme("file".into()))
        );
        assert_eq!(
            check("ftp://example.com/"),
            Err(Refused::Scheme("ftp".into()))
        );
        assert!(matches!(
            check("http://user:pw@example.com/"),
            Err(Refused::Malformed(_))
        ));
        assert_eq!(check("https://example.com/page"), Ok(()));
        assert_eq!(check("http://8.8.8.8/"), Ok(()));
    }

    #[test]
    fn allowed_ranges_open_only_what_they_name() {
        let allow = vec!["127.0.0.1/32".parse().expect("cidr")];
        let guard = Guard::new(allow);
        assert_eq!(guard.check_ip(addr("127.0.0.1")), Ok(()));
        // The mapped form of an allowed address is the same address.
        assert_eq!(guard.check_ip(addr("::ffff:127.0.0.1")), Ok(()));
        assert!(guard.check_ip(addr("127.0.0.2")).is_err());
        assert!(guard.check_ip(addr("::1")).is_err());
        assert!(guard.check_ip(addr("10.0.0.1")).is_err());
    }

    #[test]
    fn cidr_ranges_parse_and_refuse_nonsense() {
        let parse = |text: &str| text.parse::<Cidr>();
        assert_eq!(
            parse("10.0.0.0/8").map(|c| c.to_string()),
            Ok("10.0.0.0/8".into())
        );
        assert_eq!(
            parse("fd00::/8").map(|c| c.to_string()),
            Ok("fd00::/8".into())
        );
        assert_eq!(
            parse(" 127.0.0.1 ").map(|c| c.to_string()),
            Ok("127.0.0.1/32".into())
        );
        let wide = parse("0.0.0.0/0").expect("cidr");
        assert!(wide.contains(addr("203.0.113.9")) && !wide.contains(addr("::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "localhost",
            "10.0.0.0/x",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
