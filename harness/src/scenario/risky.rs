//! Floating IPs Calico accepts but that are very likely mistakes. Calico checks
//! only the family (libcalico-go/lib/validator/v3/validator.go validateIPNAT)
//! and Felix programs whatever it gets (felix/rules/nat.go
//! DNATsToIptablesChains), so the harness accepts them too and says what the
//! address collides with.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::load::Loader;
use super::located::Spanned;
use crate::calico::cluster::Network;

/// The live pods by address: their own addresses and the floating IPs Felix
/// has for them, so a new claim is checked against the holders of that one
/// address (10,000 pods from `createPods` would make a scan of every pod per
/// pod cost minutes).
#[derive(Default)]
pub(super) struct LiveIndex {
    pub own: HashMap<IpAddr, BTreeSet<String>>,
    pub floating: HashMap<IpAddr, BTreeSet<String>>,
}

impl LiveIndex {
    pub fn add(&mut self, pod: &str, own: &[IpAddr], floating: &[IpAddr]) {
        for (map, addresses) in [(&mut self.own, own), (&mut self.floating, floating)] {
            for address in addresses {
                map.entry(*address).or_default().insert(pod.to_string());
            }
        }
    }

    pub fn remove(&mut self, pod: &str, own: &[IpAddr], floating: &[IpAddr]) {
        for (map, addresses) in [(&mut self.own, own), (&mut self.floating, floating)] {
            for address in addresses {
                if let Some(pods) = map.get_mut(address) {
                    pods.remove(pod);
                    if pods.is_empty() {
                        map.remove(address);
                    }
                }
            }
        }
    }

    /// The pods other than `except` holding `address` in `map`.
    pub fn others<'a>(
        map: &'a HashMap<IpAddr, BTreeSet<String>>,
        address: &IpAddr,
        except: &'a str,
    ) -> impl Iterator<Item = &'a String> {
        map.get(address)
            .into_iter()
            .flatten()
            .filter(move |pod| pod.as_str() != except)
    }
}

/// Something with an address a floating IP could shadow.
pub(super) struct Holder<'a> {
    /// `pod `web``, `node `node-a``, ...
    pub what: String,
    pub address: &'a IpAddr,
}

/// Why `external` is risky as a floating IP of pod `pod`, if it is.
pub(super) fn risky_floating_ip<'a>(
    external: IpAddr,
    pod: &str,
    holders: impl IntoIterator<Item = Holder<'a>>,
) -> Vec<String> {
    let mut warnings = Vec::new();
    let kind = match external {
        IpAddr::V4(v4) if v4.is_unspecified() => Some("the unspecified address"),
        IpAddr::V6(v6) if v6.is_unspecified() => Some("the unspecified address"),
        IpAddr::V4(v4) if v4.is_broadcast() => Some("the limited broadcast address"),
        a if a.is_loopback() => Some("a loopback address"),
        a if a.is_multicast() => Some("a multicast address"),
        _ => None,
    };
    if let Some(kind) = kind {
        warnings.push(format!(
            "floating IP {external} of pod `{pod}` is {kind}: Calico accepts it and Felix \
             programs a DNAT for it, which no ordinary client can use"
        ));
    }
    for holder in holders {
        if *holder.address == external {
            warnings.push(format!(
                "floating IP {external} of pod `{pod}` is {}'s address: Calico accepts it, \
                 and every node holding the DNAT sends that address's traffic to `{pod}`",
                holder.what
            ));
        }
    }
    warnings
}

impl Loader<'_> {
    /// Warnings for floating IPs Calico accepts but that shadow something:
    /// `pod`'s own against every live pod and host, and every live pod's
    /// against `pod`'s addresses.
    pub(super) fn warn_risky<T>(
        &mut self,
        at: &Spanned<T>,
        name: &str,
        addresses: &[IpAddr],
        floating_ips: &[IpAddr],
        network: &Network,
        index: &LiveIndex,
    ) {
        let hosts: Vec<(String, IpAddr)> = network
            .nodes
            .iter()
            .map(|n| ("node", n))
            .chain(network.externals.iter().map(|x| ("external host", x)))
            .flat_map(|(kind, host)| {
                host.addresses
                    .iter()
                    .map(move |a| (format!("{kind} `{}`", host.name), *a))
            })
            .collect();
        let mut warnings = Vec::new();
        for external in floating_ips {
            let pods = LiveIndex::others(&index.own, external, name).map(|other| Holder {
                what: format!("pod `{other}`"),
                address: external,
            });
            let hosts =
                hosts
                    .iter()
                    .filter(|(_, address)| address == external)
                    .map(|(what, address)| Holder {
                        what: what.clone(),
                        address,
                    });
            warnings.extend(risky_floating_ip(*external, name, pods.chain(hosts)));
        }
        for address in addresses {
            for other in LiveIndex::others(&index.floating, address, name) {
                let mine = [Holder {
                    what: format!("pod `{name}`"),
                    address,
                }];
                warnings.extend(
                    risky_floating_ip(*address, other, mine)
                        .into_iter()
                        .filter(|w| w.contains("'s address")),
                );
            }
        }
        for warning in warnings {
            self.warn_at(at, warning);
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
    fn names_what_the_address_collides_with() {
        let other = ip("198.19.0.1");
        let node = ip("198.18.0.10");
        let holders = || {
            [
                Holder {
                    what: "pod `db`".into(),
                    address: &other,
                },
                Holder {
                    what: "node `node-a`".into(),
                    address: &node,
                },
            ]
        };
        let mut all = Vec::new();
        for external in [
            "198.19.0.1",
            "198.18.0.10",
            "127.0.0.1",
            "::1",
            "224.0.0.1",
            "ff02::1",
            "0.0.0.0",
            "::",
            "255.255.255.255",
        ] {
            all.extend(risky_floating_ip(ip(external), "web", holders()));
        }
        assert!(risky_floating_ip(ip("203.0.113.10"), "web", holders()).is_empty());
        insta::assert_snapshot!(all.join("\n"));
    }
}
