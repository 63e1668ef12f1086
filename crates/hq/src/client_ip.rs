//! Where a request came from: the peer's address or, behind reverse proxies named with
//! `--trusted-proxy`, the client's as those proxies wrote it in `X-Forwarded-For`. Sign-in limits
//! and the audit log go by it, so behind nginx or Caddy each client has its own limit instead of
//! all of them sharing the proxy's.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Extensions, HeaderMap};
use ipnet::IpNet;

use crate::state::AppState;

/// The header reverse proxies append the address they were reached from to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client's address, as an extractor (unknown only for requests that did not come over a
/// socket, which only tests make).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Infallible> {
        Ok(Self::of(&parts.extensions, &parts.headers, state))
    }
}

impl ClientIp {
    /// The client of a request with these extensions and headers (for middleware, which holds
    /// the whole request rather than its parts).
    pub fn of(extensions: &Extensions, headers: &HeaderMap, state: &AppState) -> Self {
        let peer = extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip());
        Self(peer.map(|peer| client_ip(peer, headers, &state.config.trusted_proxy)))
    }
}

/// The client behind `peer`. Anyone can write `X-Forwarded-For`, so it counts only when `peer`
/// is a trusted proxy; then, from the nearest hop outwards, each trusted hop's word is taken for
/// the hop before it, and the first address that is not a trusted proxy is the client.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let trusts = |ip: IpAddr| trusted.iter().any(|net| net.contains(&ip));
    let mut client = peer.to_canonical();
    if !trusts(client) {
        return client;
    }
    let hops: Vec<&str> = headers
        .get_all(X_FORWARDED_FOR)
        .iter()
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .collect();
    for hop in hops.into_iter().rev() {
        // Garbage from the hop before: go no further than the last proxy we trust.
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !trusts(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|a| a.ip()))?;
    Some(ip.to_canonical())
}

/// Parses a `--trusted-proxy` value: a network (`10.0.0.0/8`) or one address.
pub fn parse_trusted_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("'{text}' is neither an address nor a network like 10.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(X_FORWARDED_FOR, value.parse().expect("header value"));
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("address")
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| parse_trusted_proxy(n).expect("network")).collect()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_proxy() {
        let forged = headers(&["203.0.113.9"]);
        assert_eq!(client_ip(ip("198.51.100.7"), &forged, &nets(&["127.0.0.1"])), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("198.51.100.7"), &forged, &[]), ip("198.51.100.7"));
        assert_eq!(client_ip(ip("127.0.0.1"), &forged, &nets(&["127.0.0.1"])), ip("203.0.113.9"));
    }

    #[test]
    fn the_nearest_untrusted_hop_is_the_client_not_what_the_client_wrote() {
        let trusted = nets(&["10.0.0.0/8", "::1"]);
        // The client forged 1.1.1.1; the edge proxy (10.0.0.2) appended the real address.
        let chain = headers(&["1.1.1.1, 203.0.113.9", "10.0.0.2"]);
        assert_eq!(client_ip(ip("10.0.0.3"), &chain, &trusted), ip("203.0.113.9"));
        assert_eq!(client_ip(ip("::1"), &headers(&["[2001:db8::5]:4711"]), &trusted), ip("2001:db8::5"));
        // Every hop trusted: the farthest one is all there is to go by.
        assert_eq!(client_ip(ip("10.0.0.3"), &headers(&["10.0.0.9"]), &trusted), ip("10.0.0.9"));
        // No header, or garbage: the nearest proxy we trust.
        assert_eq!(client_ip(ip("10.0.0.3"), &HeaderMap::new(), &trusted), ip("10.0.0.3"));
        assert_eq!(client_ip(ip("10.0.0.3"), &headers(&["1.2.3.4, unknown"]), &trusted), ip("10.0.0.3"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_networks() {
        let peer = ip("::ffff:127.0.0.1");
        assert_eq!(client_ip(peer, &headers(&["203.0.113.9"]), &nets(&["127.0.0.0/8"])), ip("203.0.113.9"));
    }

    #[test]
    fn flag_values_are_addresses_or_networks() {
        assert_eq!(parse_trusted_proxy("10.1.2.3").expect("address").to_string(), "10.1.2.3/32");
        assert_eq!(parse_trusted_proxy("fd00::/8").expect("network").to_string(), "fd00::/8");
        let error = parse_trusted_proxy("proxy.local").expect_err("a name");
        assert!(error.contains("proxy.local"), "{error}");
    }

    proptest! {
        #[test]
        fn any_header_yields_the_peer_or_an_address_in_it(header in "[0-9a-f.:, \\[\\]]{0,60}", peer in any::<std::net::Ipv4Addr>()) {
            let Ok(value) = header.parse() else { return Ok(()) };
            let mut map = HeaderMap::new();
            map.insert(X_FORWARDED_FOR, value);
            let peer = IpAddr::V4(peer);
            let found = client_ip(peer, &map, &nets(&["0.0.0.0/0"]));
            prop_assert!(found == peer || header.split(',').any(|hop| parse_hop(hop) == Some(found)));
        }
    }
}
