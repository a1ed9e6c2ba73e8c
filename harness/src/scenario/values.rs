//! Scalar values of the scenario language. Each is checked while the file is
//! read (its `Deserialize` parses the string), so a bad value is reported at
//! its own line and column with the key path in front.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::calico::IpFamily;

/// Implements `Deserialize` through `FromStr`, raising the parse error inside
/// the deserializer so that it carries the value's position.
macro_rules! deserialize_from_str {
    ($ty:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                        v.parse().map_err(E::custom)
                    }
                }
                deserializer.deserialize_str(V)
            }
        }
    };
}

/// A node, pod, external host, stream or scenario name: a DNS label
/// (RFC 1123: 1-63 of `a-z 0-9 -`, starting and ending alphanumeric).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Name(String);

impl Name {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Name {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok_chars = s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        let ok_ends = s.starts_with(|c: char| c.is_ascii_alphanumeric())
            && s.ends_with(|c: char| c.is_ascii_alphanumeric());
        if (1..=63).contains(&s.len()) && ok_chars && ok_ends {
            Ok(Name(s.to_owned()))
        } else {
            Err(format!(
                "`{s}` is not a valid name (a DNS label: 1-63 lowercase letters, digits or `-`, \
                 starting and ending with a letter or digit)"
            ))
        }
    }
}
deserialize_from_str!(Name, "a name (DNS label)");

/// A duration written `250us`, `10ms`, `1s`, `1.5s` or `2m`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationValue(pub Duration);

impl FromStr for DurationValue {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "`{s}` is not a duration (a number with a unit: ns, us, ms, s or m, e.g. `10ms`)"
            )
        };
        let split = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let (number, unit) = s.split_at(split);
        let number: f64 = number.parse().map_err(|_| bad())?;
        let nanos_per_unit = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            _ => return Err(bad()),
        };
        Ok(DurationValue(Duration::from_nanos(
            (number * nanos_per_unit).round() as u64,
        )))
    }
}
deserialize_from_str!(DurationValue, "a duration such as `10ms`");

/// An IP address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Address(pub IpAddr);

impl FromStr for Address {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Address)
            .map_err(|_| format!("`{s}` is not an IP address"))
    }
}
deserialize_from_str!(Address, "an IP address");

/// A CIDR such as `198.19.0.0/16`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(pub ipnet::IpNet);

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Cidr)
            .map_err(|_| format!("`{s}` is not a CIDR (address/prefix length)"))
    }
}
deserialize_from_str!(Cidr, "a CIDR");

/// Where traffic goes: an address, or a host by name (its IPv4 address, or its
/// IPv6 address with `name/v6`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Target {
    Address(IpAddr),
    Host { name: String, family: IpFamily },
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if let Ok(address) = s.parse() {
            return Ok(Target::Address(address));
        }
        if s == ":" {
            // `to: ::` unquoted reaches us as `:`, YAML having taken one colon.
            return Err(
                "`:` is not an IP address; write IPv6 addresses in quotes, e.g. `to: \"::1\"`"
                    .into(),
            );
        }
        if s.contains(':') || s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(format!("`{s}` is not an IP address"));
        }
        let (name, family) = match s.split_once('/') {
            None => (s, IpFamily::V4),
            Some((name, "v4")) => (name, IpFamily::V4),
            Some((name, "v6")) => (name, IpFamily::V6),
            Some(_) => {
                return Err(format!(
                    "`{s}` is neither an IP address nor a name (`name`, `name/v4` or `name/v6`)"
                ))
            }
        };
        let name: Name = name
            .parse()
            .map_err(|e: String| format!("`{s}` is neither an IP address nor a name: {e}"))?;
        Ok(Target::Host {
            name: name.0,
            family,
        })
    }
}
deserialize_from_str!(Target, "an IP address or a name");

/// A loss is written as a packet count (`0`) or a percentage (`"5%"`).
impl FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad =
            || format!("`{s}` is not a loss (a packet count like `0` or a percentage like `5%`)");
        match s.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if (0.0..=100.0).contains(&p) {
                    Ok(Loss::Percent(p))
                } else {
                    Err(format!("`{s}` is not a percentage between 0% and 100%"))
                }
            }
            None => s.trim().parse().map(Loss::Packets).map_err(|_| bad()),
        }
    }
}

impl<'de> Deserialize<'de> for Loss {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Loss;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a packet count or a percentage such as \"5%\"")
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Loss, E> {
                Ok(Loss::Packets(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Loss, E> {
                u64::try_from(v)
                    .map(Loss::Packets)
                    .map_err(|_| E::custom(format!("`{v}` is not a loss (negative)")))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Loss, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A seen address is written `pod`, `from` or as an IP address.
impl FromStr for SeenAddress {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "pod" => Ok(SeenAddress::Pod),
            "from" => Ok(SeenAddress::From),
            _ => s
                .parse()
                .map(SeenAddress::Address)
                .map_err(|_| format!("`{s}` is neither `pod`, `from` nor an IP address")),
        }
    }
}
deserialize_from_str!(SeenAddress, "`pod`, `from` or an IP address");

/// A delivery is written `none`, as one pod name or as a list of pod names.
impl<'de> Deserialize<'de> for Delivery {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Delivery;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a pod name, `none`, a list of pod names or `{oneOf: [pods]}`")
            }
            fn visit_map<A: de::MapAccess<'de>>(self, mut map: A) -> Result<Delivery, A::Error> {
                let key = map.next_key::<String>()?;
                if key.as_deref() != Some("oneOf") {
                    return Err(de::Error::custom("the only mapping is `{oneOf: [pods]}`"));
                }
                let pods: Vec<Name> = map.next_value()?;
                if pods.len() < 2 {
                    return Err(de::Error::custom("`oneOf` needs two pods or more"));
                }
                if let Some(extra) = map.next_key::<String>()? {
                    return Err(de::Error::custom(format!(
                        "unexpected `{extra}` beside `oneOf`"
                    )));
                }
                Ok(Delivery::OneOf(pods.into_iter().map(|n| n.0).collect()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Delivery, E> {
                if v == "none" {
                    return Ok(Delivery::None);
                }
                let name: Name = v.parse().map_err(E::custom)?;
                Ok(Delivery::Pods(vec![name.0]))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Delivery, A::Error> {
                let mut pods = Vec::new();
                while let Some(name) = seq.next_element::<Name>()? {
                    pods.push(name.0);
                }
                Ok(if pods.is_empty() {
                    Delivery::None
                } else {
                    Delivery::Pods(pods)
                })
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// Traffic kinds and the conntrack profile: the shared vocabulary's.
pub use crate::vocab::{ConntrackProfile, Protocol};

/// What traffic must do: the judgements' own (check/); how the scenario
/// language spells them is here, with the other scalars.
pub use crate::check::{Delivery, Loss, SeenAddress};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |s: &str| s.parse::<DurationValue>().map(|d| d.0);
        assert_eq!(d("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(d("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(d("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(d("2m"), Ok(Duration::from_secs(120)));
        assert!(d("10").is_err());
        assert!(d("ms").is_err());
        assert!(d("10 ms").is_err());
        assert!(d("-1s").is_err());
    }

    #[test]
    fn names() {
        assert!("node-a".parse::<Name>().is_ok());
        assert!("a".repeat(63).parse::<Name>().is_ok());
        for bad in ["", "Node", "-a", "a-", "a_b", "a.b", &"a".repeat(64)] {
            assert!(bad.parse::<Name>().is_err(), "{bad}");
        }
    }

    #[test]
    fn targets_losses_seen() {
        assert_eq!(
            "203.0.113.10".parse(),
            Ok(Target::Address("203.0.113.10".parse().unwrap()))
        );
        assert_eq!(
            "web/v6".parse(),
            Ok(Target::Host {
                name: "web".into(),
                family: IpFamily::V6
            })
        );
        assert!("web/v5".parse::<Target>().is_err());
        assert!("203.0.113.300".parse::<Target>().is_err());
        assert_eq!("5%".parse(), Ok(Loss::Percent(5.0)));
        assert_eq!("3".parse(), Ok(Loss::Packets(3)));
        assert!("101%".parse::<Loss>().is_err());
        assert_eq!("pod".parse(), Ok(SeenAddress::Pod));
        assert!("podd".parse::<SeenAddress>().is_err());
    }
}
