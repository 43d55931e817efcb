//! Where ALB keys come from: the signer ARN (its partition and region), the region's key
//! endpoint, or an override checked like a JWKS URL.

use crate::config::ConfigError;

pub(super) struct Arn<'a> {
    pub(super) partition: &'a str,
    pub(super) region: &'a str,
}

/// `arn:{partition}:elasticloadbalancing:{region}:{account}:loadbalancer/app/{name}/{id}`.
pub(super) fn parse_arn(arn: &str) -> Result<Arn<'_>, ConfigError> {
    let bad = ConfigError::InvalidSetting {
        setting: "ALB signer ARN",
        reason: "expected arn:<partition>:elasticloadbalancing:<region>:<account>:loadbalancer/app/<name>/<id>",
    };
    let fields: Vec<&str> = arn.splitn(6, ':').collect();
    let [prefix, partition, service, region, account, resource] = fields[..] else {
        return Err(bad);
    };
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let resource_ok = resource.strip_prefix("loadbalancer/app/").is_some_and(|rest| {
        let mut it = rest.split('/');
        matches!((it.next(), it.next(), it.next()), (Some(n), Some(i), None) if !n.is_empty() && !i.is_empty())
    });
    if prefix != "arn"
        || !partition.starts_with("aws")
        || service != "elasticloadbalancing"
        || !account_ok
        || !resource_ok
        || !arn.is_ascii()
    {
        return Err(bad);
    }
    check_region(region)?;
    Ok(Arn { partition, region })
}

pub(super) fn check_region(region: &str) -> Result<(), ConfigError> {
    let ok = !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(ConfigError::InvalidRegion(region.to_owned()))
    }
}

/// The region's ALB key endpoint, as a base URL the kid is pushed onto.
pub(super) fn region_endpoint(partition: &str, region: &str) -> Result<reqwest::Url, ConfigError> {
    let raw = match partition {
        "aws" => format!("https://public-keys.auth.elb.{region}.amazonaws.com/"),
        "aws-us-gov" => {
            format!("https://s3-{region}.amazonaws.com/aws-elb-public-keys-prod-{region}/")
        }
        _ => {
            return Err(ConfigError::InvalidSetting {
                setting: "ALB key endpoint",
                reason: "no known key endpoint for this partition: give key_endpoint",
            })
        }
    };
    reqwest::Url::parse(&raw).map_err(|e| ConfigError::InvalidUrl {
        setting: "ALB key endpoint",
        reason: format!("{raw:?}: {e}"),
    })
}

pub(super) fn checked_endpoint(
    raw: &str,
    allow_http_loopback: bool,
) -> Result<reqwest::Url, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidUrl {
        setting: "ALB key endpoint",
        reason,
    };
    let url = reqwest::Url::parse(raw).map_err(|e| invalid(format!("{raw:?}: {e}")))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid("credentials in the URL are not allowed".into()));
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        return Err(invalid(format!(
            "{raw:?}: a base URL without query or fragment is required"
        )));
    }
    match url.scheme() {
        "https" => Ok(url),
        "http" if allow_http_loopback && is_loopback(&url) => Ok(url),
        "http" if allow_http_loopback => Err(invalid(format!(
            "{raw:?}: plain http is allowed only to localhost or a loopback address"
        ))),
        "http" => Err(invalid(format!(
            "{raw:?}: plain http is refused; use https, or allow_http_on_loopback(true) for a local endpoint"
        ))),
        other => Err(invalid(format!("{raw:?}: unsupported scheme {other:?}"))),
    }
}

fn is_loopback(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alb::{AlbConfig, AlbVerifier};

    const ARN: &str =
        "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/50dc6c495c0c9188";

    #[test]
    fn region_endpoints() {
        let a = parse_arn(ARN).unwrap();
        assert_eq!(
            region_endpoint(a.partition, a.region).unwrap().as_str(),
            "https://public-keys.auth.elb.eu-west-1.amazonaws.com/"
        );
        assert_eq!(
            region_endpoint("aws-us-gov", "us-gov-west-1")
                .unwrap()
                .as_str(),
            "https://s3-us-gov-west-1.amazonaws.com/aws-elb-public-keys-prod-us-gov-west-1/"
        );
        assert!(region_endpoint("aws-cn", "cn-north-1").is_err());
    }

    #[test]
    fn arns_are_checked() {
        for bad in [
            "",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/net/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1:12345:loadbalancer/app/web/1",
            "arn:aws:s3:eu-west-1:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1/x:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:EU-WEST-1:123456789012:loadbalancer/app/web/1",
            "arn:aws:elasticloadbalancing:eu-west-1:123456789012:loadbalancer/app/web/1/x",
        ] {
            assert!(parse_arn(bad).is_err(), "{bad:?}");
        }
        assert!(AlbVerifier::new(AlbConfig::new(Vec::<String>::new())).is_err());
    }

    #[test]
    fn endpoint_override_is_checked() {
        assert!(checked_endpoint("http://127.0.0.1:1/", false).is_err());
        assert!(checked_endpoint("http://127.0.0.1:1/", true).is_ok());
        assert!(checked_endpoint("http://example.com/", true).is_err());
        assert!(checked_endpoint("https://u:p@example.com/", false).is_err());
        assert!(checked_endpoint("https://example.com/?a=b", false).is_err());
        assert!(checked_endpoint("https://example.com/keys/", false).is_ok());
    }
}
