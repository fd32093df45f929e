//! Address rules for HTTP requests: link-local and cloud metadata addresses are refused unless the
//! Account allows them, so a templated URL cannot be turned against the node's metadata service
//! (and its cloud credentials). The rules are applied to every address DNS returns, at connect
//! time, so a name that later resolves elsewhere is caught too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Metadata services that are not link-local: Alibaba Cloud's and AWS's IPv6 one.
const METADATA_V4: [Ipv4Addr; 1] = [Ipv4Addr::new(100, 100, 100, 200)];
const METADATA_V6: [Ipv6Addr; 1] = [Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)];

/// Whether requests to `ip` are refused by default.
pub fn is_refused(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_link_local() || METADATA_V4.contains(&v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_refused(IpAddr::V4(v4)),
            None => (v6.segments()[0] & 0xffc0) == 0xfe80 || METADATA_V6.contains(&v6),
        },
    }
}

/// The message of a refused address.
pub fn refusal(host: &str, ip: IpAddr) -> String {
    format!(
        "'{host}' is {ip}, a link-local or cloud metadata address; set spec.connection.allowLinkLocalAddresses on the Account to allow it"
    )
}

/// Checks a URL whose host is an IP literal (DNS is not asked for those).
pub fn check_literal(url: &reqwest::Url, allow: bool) -> Result<(), String> {
    let host = url.host_str().unwrap_or_default();
    let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() else { return Ok(()) };
    if !allow && is_refused(ip) { Err(refusal(host, ip)) } else { Ok(()) }
}

/// The system resolver, with refused addresses taken out of every answer.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    pub allow_link_local: bool,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow_link_local;
        Box::pin(async move {
            let host = name.as_str().to_string();
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let (kept, refused): (Vec<SocketAddr>, Vec<SocketAddr>) =
                found.into_iter().partition(|a| allow || !is_refused(a.ip()));
            match (kept.is_empty(), refused.first()) {
                (true, Some(first)) => Err(refusal(&host, first.ip()).into()),
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_addresses_are_refused() {
        for refused in
            ["169.254.169.254", "169.254.0.1", "100.100.100.200", "fe80::1", "fd00:ec2::254", "::ffff:169.254.169.254"]
        {
            assert!(is_refused(refused.parse().unwrap()), "{refused}");
        }
        for allowed in ["127.0.0.1", "10.0.0.1", "8.8.8.8", "::1", "2001:db8::1", "100.100.100.201"] {
            assert!(!is_refused(allowed.parse().unwrap()), "{allowed}");
        }
    }

    #[test]
    fn ip_literal_urls_are_checked_unless_allowed() {
        let url = reqwest::Url::parse("http://169.254.169.254/latest/meta-data/").unwrap();
        let err = check_literal(&url, false).unwrap_err();
        assert!(err.contains("allowLinkLocalAddresses"), "{err}");
        assert!(check_literal(&url, true).is_ok());
        assert!(check_literal(&reqwest::Url::parse("https://[fe80::1]:8443/x").unwrap(), false).is_err());
        assert!(check_literal(&reqwest::Url::parse("https://example.com/x").unwrap(), false).is_ok());
    }
}
