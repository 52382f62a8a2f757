//! The client's address, also behind a reverse proxy (issue 16): login throttling and the
//! request log use it. A forwarded header is believed **only from a trusted proxy**
//! (`aliquot serve --trusted-proxy ADDR[/PREFIX]`, repeatable), and only the one header that
//! proxy writes (`--forwarded-header`, `x-forwarded-for` or `forwarded`): a client cannot
//! choose its own address by sending the header itself.
//!
//! The chain is read from the right (the hop the nearest proxy saw) to the left, over the
//! trusted proxies; the first address that is not a trusted proxy is the client. A hop that
//! does not parse (`unknown`, an obfuscated `_name`, garbage) ends the walk at the last
//! trusted proxy, whose address is then used: never an address nobody vouched for.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Which header the trusted proxies write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2` (nginx, HAProxy, most load balancers).
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl FromStr for ForwardedHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "x-forwarded-for" => Ok(ForwardedHeader::XForwardedFor),
            "forwarded" => Ok(ForwardedHeader::Forwarded),
            _ => Err(format!(
                "{s:?}: give `x-forwarded-for` or `forwarded` (the header the proxy writes)"
            )),
        }
    }
}

/// The proxies whose forwarded header is believed. Empty (the default): none, the peer's
/// address is the client's.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ForwardedHeader,
}

impl TrustedProxies {
    /// `ADDR` or `ADDR/PREFIX` each (IPv4 or IPv6), e.g. `10.0.0.5`, `10.1.0.0/16`, `::1`.
    pub fn parse(list: &[String], header: ForwardedHeader) -> Result<TrustedProxies, String> {
        let mut nets = Vec::new();
        for item in list.iter().flat_map(|s| s.split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let net = if item.contains('/') {
                IpNet::from_str(item)
                    .map(|n| n.trunc())
                    .map_err(|_| format!("{item:?} is not an address or ADDR/PREFIX"))?
            } else {
                IpNet::from(
                    IpAddr::from_str(item)
                        .map_err(|_| format!("{item:?} is not an address or ADDR/PREFIX"))?
                        .to_canonical(),
                )
            };
            nets.push(net);
        }
        Ok(TrustedProxies { nets, header })
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.nets.iter().any(|n| n.contains(&ip))
    }

    pub fn header(&self) -> ForwardedHeader {
        self.header
    }
}

/// The client's address, set on every request by the connection (`conn.rs`); handlers take
/// it with `Extension<ClientAddr>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// The client's address for a request that arrived from `peer`; see the module
/// documentation.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    let peer = peer.to_canonical();
    if !trusted.contains(peer) {
        return peer;
    }
    let hops = match trusted.header {
        ForwardedHeader::XForwardedFor => x_forwarded_for(headers),
        ForwardedHeader::Forwarded => forwarded(headers),
    };
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop {
            Some(ip) => {
                client = *ip;
                if !trusted.contains(*ip) {
                    return *ip;
                }
            }
            None => return client,
        }
    }
    client
}

/// Every `X-Forwarded-For` value in order, left to right; `None` for a hop that does not
/// parse.
fn x_forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(s) => s.split(',').map(|h| parse_node(h.trim())).collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// The `for=` of every RFC 7239 `Forwarded` element in order; `None` for an element without
/// one, or one that is not an address (`unknown`, `_hidden`).
fn forwarded(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    headers
        .get_all("forwarded")
        .iter()
        .flat_map(|v| match v.to_str() {
            Ok(s) => s
                .split(',')
                .map(|element| {
                    element
                        .split(';')
                        .find_map(|pair| {
                            let (name, value) = pair.split_once('=')?;
                            name.trim()
                                .eq_ignore_ascii_case("for")
                                .then(|| parse_node(value.trim().trim_matches('"')))
                        })
                        .flatten()
                })
                .collect(),
            Err(_) => vec![None],
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_node(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip.to_canonical());
    }
    if let Ok(sa) = SocketAddr::from_str(s) {
        return Some(sa.ip().to_canonical());
    }
    let inner = s.strip_prefix('[')?.strip_suffix(']')?;
    IpAddr::from_str(inner).ok().map(|ip| ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, value.parse().unwrap());
        }
        h
    }

    /// (trusted, header kind, peer, headers, the client's address).
    #[test]
    fn the_client_address_is_believed_only_from_trusted_proxies() {
        use ForwardedHeader::{Forwarded, XForwardedFor};
        let xff = "x-forwarded-for";
        let fwd = "forwarded";
        #[allow(clippy::type_complexity)]
        let cases: &[(
            &[&str],
            ForwardedHeader,
            &str,
            &[(&'static str, &str)],
            &str,
        )] = &[
            // No trusted proxy: the header is ignored.
            (
                &[],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "203.0.113.7")],
                "10.0.0.5",
            ),
            // A peer that is not a trusted proxy cannot choose its address.
            (
                &["10.0.0.5"],
                XForwardedFor,
                "10.0.0.6",
                &[(xff, "203.0.113.7")],
                "10.0.0.6",
            ),
            // The trusted proxy's hop is believed.
            (
                &["10.0.0.5"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "203.0.113.7")],
                "203.0.113.7",
            ),
            // A client-sent value to the left of the proxy's is not.
            (
                &["10.0.0.5"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "1.2.3.4, 203.0.113.7")],
                "203.0.113.7",
            ),
            // Two trusted proxies (a prefix): walked over to the first untrusted hop.
            (
                &["10.0.0.0/24"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "1.2.3.4, 203.0.113.7, 10.0.0.9")],
                "203.0.113.7",
            ),
            // Several header lines are one list.
            (
                &["10.0.0.0/24"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "1.2.3.4"), (xff, "203.0.113.7, 10.0.0.9")],
                "203.0.113.7",
            ),
            // Only trusted hops: the leftmost.
            (
                &["10.0.0.0/24"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "10.0.0.7, 10.0.0.9")],
                "10.0.0.7",
            ),
            // Garbage or unknown: the last trusted proxy.
            (
                &["10.0.0.0/24"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "203.0.113.7, garbage")],
                "10.0.0.5",
            ),
            (
                &["10.0.0.0/24"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "203.0.113.7, unknown, 10.0.0.9")],
                "10.0.0.9",
            ),
            // No header from a trusted proxy: the proxy.
            (&["10.0.0.5"], XForwardedFor, "10.0.0.5", &[], "10.0.0.5"),
            // Ports and IPv6.
            (
                &["::1"],
                XForwardedFor,
                "::1",
                &[(xff, "[2001:db8::7]:4711")],
                "2001:db8::7",
            ),
            (
                &["10.0.0.5"],
                XForwardedFor,
                "10.0.0.5",
                &[(xff, "203.0.113.7:5555")],
                "203.0.113.7",
            ),
            // An IPv4-mapped peer is the IPv4 address.
            (
                &["10.0.0.5"],
                XForwardedFor,
                "::ffff:10.0.0.5",
                &[(xff, "203.0.113.7")],
                "203.0.113.7",
            ),
            // The configured header only: a Forwarded sent through an XFF proxy is ignored.
            (
                &["10.0.0.5"],
                XForwardedFor,
                "10.0.0.5",
                &[(fwd, "for=1.2.3.4"), (xff, "203.0.113.7")],
                "203.0.113.7",
            ),
            (
                &["10.0.0.5"],
                Forwarded,
                "10.0.0.5",
                &[(fwd, "for=1.2.3.4"), (xff, "203.0.113.8")],
                "1.2.3.4",
            ),
            // RFC 7239 forms.
            (
                &["10.0.0.5"],
                Forwarded,
                "10.0.0.5",
                &[(fwd, "for=\"[2001:db8:cafe::17]:4711\";proto=https")],
                "2001:db8:cafe::17",
            ),
            (
                &["10.0.0.0/24"],
                Forwarded,
                "10.0.0.5",
                &[(
                    fwd,
                    "for=1.2.3.4, For=203.0.113.7;by=10.0.0.5, for=10.0.0.9",
                )],
                "203.0.113.7",
            ),
            (
                &["10.0.0.5"],
                Forwarded,
                "10.0.0.5",
                &[(fwd, "for=_hidden")],
                "10.0.0.5",
            ),
            (
                &["10.0.0.5"],
                Forwarded,
                "10.0.0.5",
                &[(fwd, "proto=https")],
                "10.0.0.5",
            ),
        ];
        for (trusted, kind, peer, hs, want) in cases {
            let trusted = TrustedProxies::parse(
                &trusted.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                *kind,
            )
            .unwrap();
            let got = client_ip(peer.parse().unwrap(), &headers(hs), &trusted);
            assert_eq!(got, want.parse::<IpAddr>().unwrap(), "{peer} {hs:?}");
        }
    }

    #[test]
    fn trusted_proxies_are_parsed_or_refused_by_name() {
        let ok = TrustedProxies::parse(
            &["10.0.0.1, 192.168.0.0/16".into(), "::1".into()],
            ForwardedHeader::XForwardedFor,
        )
        .unwrap();
        assert!(ok.contains("192.168.4.4".parse().unwrap()));
        assert!(ok.contains("10.0.0.1".parse().unwrap()));
        assert!(!ok.contains("10.0.0.2".parse().unwrap()));
        for bad in ["10.0.0.300", "proxy.example", "10.0.0.0/33"] {
            let err =
                TrustedProxies::parse(&[bad.into()], ForwardedHeader::XForwardedFor).unwrap_err();
            assert!(err.contains(bad), "{err}");
        }
        assert!("Forwarded".parse::<ForwardedHeader>().is_ok());
        assert!("x-real-ip".parse::<ForwardedHeader>().is_err());
    }
}
