//! Calico IP pools and the BGP advertisement rule for floating IPs.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// How a pool's traffic crosses between nodes.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema,
)]
pub enum Encapsulation {
    #[default]
    None,
    #[serde(rename = "IPIP")]
    Ipip,
    #[serde(rename = "VXLAN")]
    Vxlan,
}

/// A Calico IP pool (projectcalico.org/v3 IPPool spec, the fields that matter here).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpPool {
    pub name: String,
    pub cidr: IpNet,
    /// Prefix length of the blocks IPAM hands to nodes (26 for v4, 122 for v6).
    pub block_size: u8,
    pub encapsulation: Encapsulation,
    /// `ipipMode` / `vxlanMode` is CrossSubnet: encapsulate only towards
    /// nodes of another subnet (what BIRD's `krt_tunnel` choice reads).
    #[serde(default)]
    pub cross_subnet: bool,
    pub disable_bgp_export: bool,
    pub nat_outgoing: bool,
    /// A disabled pool is not used by IPAM (it may still hold floating IPs).
    pub disabled: bool,
    /// `allowedUses: [LoadBalancer]`: IPAM never gives its addresses to pods
    /// (libcalico-go/lib/ipam/ipam.go `autoAssign` asks for pools allowing
    /// `Workload`), and from v3.31.6 / v3.32.1 NAT-outgoing treats it as
    /// outside the pools (crate::calico::release, `NetworkIpPoolsSet`).
    #[serde(default)]
    pub load_balancer_only: bool,
}

/// Who learns a floating IP's route over BGP, as the filters confd renders
/// from the pools decide (confd/pkg/backends/calico/bgp_processor.go
/// `processIPPool`, default cluster-route policy).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatingIpReach {
    /// Not exported (outside every pool, where `calico_export_to_bgp_peers`
    /// matches nothing and the export filter ends in `reject`; or in a
    /// `disableBGPExport` pool): only the hosting node routes it.
    HostingNode,
    /// Exported to BGP peers, so the fabric programs it, but the other Calico
    /// nodes' `calico_kernel_programming` rejects the pool (VXLAN: "VXLAN
    /// routes are handled by Felix."; IPIP: "Cluster routes are handled by
    /// Felix."): they reach it by their default route, through the fabric.
    Fabric,
    /// Exported, and programmed by every other node too.
    FabricAndNodes,
}

impl IpPool {
    /// An enabled, unencapsulated, BGP-exported pool with every option off
    /// (the benches' and tests' plain pool; a manifest's defaults differ in
    /// block size only, which the caller gives).
    pub fn plain(name: &str, cidr: IpNet, block_size: u8) -> Self {
        Self {
            name: name.to_string(),
            cidr,
            block_size,
            encapsulation: Encapsulation::None,
            cross_subnet: false,
            disable_bgp_export: false,
            nat_outgoing: false,
            disabled: false,
            load_balancer_only: false,
        }
    }

    /// What Calico's BIRD filters do with routes inside this pool.
    pub fn floating_ip_reach(&self) -> FloatingIpReach {
        match (self.disable_bgp_export, self.encapsulation) {
            (true, _) => FloatingIpReach::HostingNode,
            (false, Encapsulation::None) => FloatingIpReach::FabricAndNodes,
            (false, Encapsulation::Vxlan | Encapsulation::Ipip) => FloatingIpReach::Fabric,
        }
    }
}

/// The BGP reach of a floating IP: decided by the most specific pool
/// containing it (Calico forbids overlapping pools, so there is one at
/// most in a real cluster); outside every pool, none.
pub fn floating_ip_reach(address: IpAddr, pools: &[IpPool]) -> FloatingIpReach {
    pools
        .iter()
        .filter(|pool| pool.cidr.contains(&address))
        .max_by_key(|pool| pool.cidr.prefix_len())
        .map_or(FloatingIpReach::HostingNode, IpPool::floating_ip_reach)
}

/// Calico's default block sizes.
pub const DEFAULT_BLOCK_SIZE_V4: u8 = 26;
pub const DEFAULT_BLOCK_SIZE_V6: u8 = 122;

/// `ipipMode` / `vxlanMode` of a v3 IPPool.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum EncapMode {
    Never,
    Always,
    /// Encapsulate only across subnets. Counts as encapsulated for BIRD's
    /// filters; only the `krt_tunnel` choice (when BIRD programs IPIP routes)
    /// tells it from Always.
    CrossSubnet,
}

/// Declares a struct that reads the settings of a projectcalico.org/v3 IPPool
/// spec the harness models, between the caller's own leading and trailing
/// fields: the one definition of those settings for both places that read them,
/// a manifest's `spec` ([`IpPoolSpec`]) and a scenario's inline pool
/// (scenario/raw.rs). A macro rather than `#[serde(flatten)]`: flatten buffers
/// the mapping, so yaml_serde could no longer place errors on the offending
/// field, and it cannot deny unknown fields. With `=> IpPoolSpec` the struct
/// also gets `settings_on(cidr)`: an [`IpPoolSpec`] of that CIDR with its
/// settings.
macro_rules! ip_pool_settings {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$lead_meta:meta])* pub $lead:ident: $lead_ty:ty,)*
            ..settings..
            $($(#[$tail_meta:meta])* pub $tail:ident: $tail_ty:ty,)*
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$lead_meta])* pub $lead: $lead_ty,)*
            #[serde(default)]
            pub block_size: Option<u8>,
            /// The harness's short form (`None | IPIP | VXLAN`), exclusive with the modes.
            #[serde(default)]
            pub encapsulation: Option<$crate::calico::Encapsulation>,
            #[serde(default)]
            pub ipip_mode: Option<$crate::calico::pool::EncapMode>,
            #[serde(default)]
            pub vxlan_mode: Option<$crate::calico::pool::EncapMode>,
            #[serde(default, rename = "disableBGPExport")]
            pub disable_bgp_export: Option<bool>,
            #[serde(default)]
            pub nat_outgoing: Option<bool>,
            #[serde(default)]
            pub disabled: Option<bool>,
            $($(#[$tail_meta])* pub $tail: $tail_ty,)*
        }
    };
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident { $($fields:tt)* } => IpPoolSpec
    ) => {
        $crate::calico::pool::ip_pool_settings! {
            $(#[$meta])*
            $vis struct $name { $($fields)* }
        }

        impl $name {
            /// An [`IpPoolSpec`]($crate::calico::IpPoolSpec) of `cidr` with these settings.
            pub(crate) fn settings_on(&self, cidr: String) -> $crate::calico::IpPoolSpec {
                $crate::calico::IpPoolSpec {
                    cidr,
                    block_size: self.block_size,
                    encapsulation: self.encapsulation,
                    ipip_mode: self.ipip_mode,
                    vxlan_mode: self.vxlan_mode,
                    disable_bgp_export: self.disable_bgp_export,
                    nat_outgoing: self.nat_outgoing,
                    disabled: self.disabled,
                    ..$crate::calico::IpPoolSpec::default()
                }
            }
        }
    };
}
pub(crate) use ip_pool_settings;

ip_pool_settings! {
    /// The `spec` of a projectcalico.org/v3 IPPool (fields the harness uses; other
    /// Calico fields are accepted and ignored so real manifests load).
    #[derive(Clone, Debug, Default, PartialEq, Deserialize)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    pub struct IpPoolSpec {
        pub cidr: String,
        ..settings..
        #[serde(default)]
        pub node_selector: Option<yaml_serde::Value>,
        #[serde(default)]
        pub allowed_uses: Option<yaml_serde::Value>,
        #[serde(default)]
        pub assignment_mode: Option<yaml_serde::Value>,
    }
}

/// Why an IP pool was rejected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    #[error("pool `{pool}`: cidr `{cidr}` is not a CIDR")]
    BadCidr { pool: String, cidr: String },
    #[error("pool `{pool}`: cidr `{cidr}` has host bits set (the network is `{network}`)")]
    HostBitsSet {
        pool: String,
        cidr: String,
        network: String,
    },
    #[error(
        "pool `{pool}`: blockSize {block_size} is out of range for IPv{family} ({min}..={max})"
    )]
    BlockSizeRange {
        pool: String,
        block_size: u8,
        family: u8,
        min: u8,
        max: u8,
    },
    /// api/pkg/apis/projectcalico/v3/ippool.go, the IPPoolSpec CEL rules.
    #[error("pool `{pool}`: cidr {cidr}: IPPool CIDR overlaps with IPv{family} link local range {range}")]
    LinkLocal {
        pool: String,
        cidr: String,
        family: u8,
        range: &'static str,
    },
    #[error("pool `{pool}`: blockSize {block_size} is larger than the pool {cidr}")]
    BlockLargerThanPool {
        pool: String,
        block_size: u8,
        cidr: String,
    },
    #[error("pool `{pool}`: give either `encapsulation` or `ipipMode`/`vxlanMode`, not both")]
    EncapsulationTwice { pool: String },
    #[error("pool `{pool}`: ipipMode and vxlanMode cannot both be enabled")]
    IpipAndVxlan { pool: String },
    #[error("pool `{pool}`: IPIP is not supported on an IPv6 pool")]
    IpipOnIpv6 { pool: String },
    #[error(
        "expected apiVersion projectcalico.org/v3 and kind IPPool, found {api_version} {kind}"
    )]
    NotAnIpPool { api_version: String, kind: String },
    #[error("pool `{pool}`: allowedUses: unknown use {use_} (Workload, Tunnel, LoadBalancer)")]
    UnknownUse { pool: String, use_: String },
    #[error("IPPool has no metadata.name")]
    MissingName,
}

impl IpPoolSpec {
    /// Validates the spec and applies Calico's defaults.
    pub fn into_pool(self, name: &str) -> Result<IpPool, PoolError> {
        let pool = name.to_owned();
        let cidr: IpNet = self.cidr.parse().map_err(|_| PoolError::BadCidr {
            pool: pool.clone(),
            cidr: self.cidr.clone(),
        })?;
        if cidr.trunc() != cidr {
            return Err(PoolError::HostBitsSet {
                pool,
                cidr: self.cidr,
                network: cidr.trunc().to_string(),
            });
        }
        // api/pkg/apis/projectcalico/v3/ippool.go, IPPoolSpec's CEL rules:
        // a pool must neither lie in nor contain the link-local range.
        let (family, range) = match cidr {
            IpNet::V4(_) => (4, "169.254.0.0/16"),
            IpNet::V6(_) => (6, "fe80::/10"),
        };
        let link_local: IpNet = range.parse().expect("a CIDR");
        if link_local.contains(&cidr.network()) || cidr.contains(&link_local.network()) {
            return Err(PoolError::LinkLocal {
                pool,
                cidr: cidr.to_string(),
                family,
                range,
            });
        }
        let (family, min, max, default) = match cidr {
            IpNet::V4(_) => (4, 20, 32, DEFAULT_BLOCK_SIZE_V4),
            IpNet::V6(_) => (6, 116, 128, DEFAULT_BLOCK_SIZE_V6),
        };
        let block_size = self.block_size.unwrap_or(default);
        if !(min..=max).contains(&block_size) {
            return Err(PoolError::BlockSizeRange {
                pool,
                block_size,
                family,
                min,
                max,
            });
        }
        if block_size < cidr.prefix_len() {
            return Err(PoolError::BlockLargerThanPool {
                pool,
                block_size,
                cidr: cidr.to_string(),
            });
        }
        let on = |m: Option<EncapMode>| m.is_some_and(|m| m != EncapMode::Never);
        let encapsulation = match (self.encapsulation, self.ipip_mode, self.vxlan_mode) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(PoolError::EncapsulationTwice { pool })
            }
            (Some(e), None, None) => e,
            (None, ipip, vxlan) => match (on(ipip), on(vxlan)) {
                (true, true) => return Err(PoolError::IpipAndVxlan { pool }),
                (true, false) => Encapsulation::Ipip,
                (false, true) => Encapsulation::Vxlan,
                (false, false) => Encapsulation::None,
            },
        };
        if encapsulation == Encapsulation::Ipip && family == 6 {
            return Err(PoolError::IpipOnIpv6 { pool });
        }
        let load_balancer_only = load_balancer_only(&pool, self.allowed_uses.as_ref())?;
        Ok(IpPool {
            name: pool,
            cidr,
            block_size,
            encapsulation,
            cross_subnet: [self.ipip_mode, self.vxlan_mode].contains(&Some(EncapMode::CrossSubnet)),
            disable_bgp_export: self.disable_bgp_export.unwrap_or(false),
            nat_outgoing: self.nat_outgoing.unwrap_or(false),
            disabled: self.disabled.unwrap_or(false),
            load_balancer_only,
        })
    }
}

/// Whether `allowedUses` is `[LoadBalancer]` alone; a use Calico does not
/// know is refused (libcalico-go/lib/validator/v3/validator.go
/// `validateIPPool`: "unknown use").
fn load_balancer_only(pool: &str, uses: Option<&yaml_serde::Value>) -> Result<bool, PoolError> {
    let Some(uses) = uses else {
        return Ok(false);
    };
    let unknown = |use_: String| PoolError::UnknownUse {
        pool: pool.to_string(),
        use_,
    };
    let list = uses
        .as_sequence()
        .ok_or_else(|| unknown(format!("{uses:?}")))?;
    let mut names = Vec::new();
    for item in list {
        match item.as_str() {
            Some(name @ ("Workload" | "Tunnel" | "LoadBalancer")) => names.push(name),
            Some(other) => return Err(unknown(format!("`{other}`"))),
            None => return Err(unknown(format!("{item:?}"))),
        }
    }
    Ok(names == ["LoadBalancer"])
}

/// One projectcalico.org/v3 IPPool document, validated while it is read so that
/// errors carry the document's position.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "IpPoolManifestDoc")]
pub struct IpPoolManifest(pub IpPool);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct IpPoolManifestDoc {
    api_version: String,
    kind: String,
    metadata: ManifestMetadata,
    spec: IpPoolSpec,
}

#[derive(Deserialize)]
struct ManifestMetadata {
    #[serde(default)]
    name: Option<String>,
}

impl TryFrom<IpPoolManifestDoc> for IpPoolManifest {
    type Error = PoolError;

    fn try_from(doc: IpPoolManifestDoc) -> Result<Self, PoolError> {
        if doc.api_version != "projectcalico.org/v3" || doc.kind != "IPPool" {
            return Err(PoolError::NotAnIpPool {
                api_version: doc.api_version,
                kind: doc.kind,
            });
        }
        let name = doc.metadata.name.ok_or(PoolError::MissingName)?;
        doc.spec.into_pool(&name).map(IpPoolManifest)
    }
}

/// A manifest error with its position in the manifest text (1-based).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{line}:{column}: {message}")]
pub struct ManifestError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl ManifestError {
    pub(crate) fn from_yaml(error: &yaml_serde::Error) -> Self {
        let (line, column) = error.location().map_or((1, 1), |l| (l.line(), l.column()));
        let text = error.to_string();
        // yaml_serde appends " at line L column C"; the position is kept apart.
        let message = text
            .rfind(" at line ")
            .map_or(text.as_str(), |i| &text[..i])
            .to_owned();
        Self {
            line,
            column,
            message,
        }
    }
}

/// Parses a YAML stream of projectcalico.org/v3 IPPool documents.
pub fn parse_ip_pool_manifests(yaml: &str) -> Result<Vec<IpPool>, ManifestError> {
    let mut pools = Vec::new();
    for document in yaml_serde::Deserializer::from_str(yaml) {
        // Empty documents (a trailing `---`) are allowed, as kubectl allows them.
        let manifest: Option<IpPoolManifest> =
            Option::deserialize(document).map_err(|e| ManifestError::from_yaml(&e))?;
        pools.extend(manifest.map(|m| m.0));
    }
    if pools.is_empty() {
        return Err(ManifestError {
            line: 1,
            column: 1,
            message: "no IPPool document found".to_owned(),
        });
    }
    Ok(pools)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(cidr: &str, encapsulation: Encapsulation, disable_bgp_export: bool) -> IpPool {
        IpPool {
            name: cidr.into(),
            cidr: cidr.parse().unwrap(),
            block_size: 26,
            encapsulation,
            cross_subnet: false,
            disable_bgp_export,
            nat_outgoing: false,
            disabled: false,
            load_balancer_only: false,
        }
    }

    #[test]
    fn advertisement_rule() {
        use Encapsulation::*;
        use FloatingIpReach::*;
        let ip: IpAddr = "203.0.113.10".parse().unwrap();
        let cases: [(&[IpPool], FloatingIpReach); 7] = [
            (&[], HostingNode),
            (&[pool("203.0.113.0/24", None, false)], FabricAndNodes),
            (&[pool("203.0.113.0/24", Vxlan, false)], Fabric),
            (&[pool("203.0.113.0/24", Ipip, false)], Fabric),
            (&[pool("203.0.113.0/24", None, true)], HostingNode),
            (&[pool("203.0.113.0/24", Vxlan, true)], HostingNode),
            // The most specific pool decides.
            (
                &[
                    pool("203.0.0.0/16", Vxlan, false),
                    pool("203.0.113.0/24", None, false),
                ],
                FabricAndNodes,
            ),
        ];
        for (pools, reach) in cases {
            assert_eq!(floating_ip_reach(ip, pools), reach, "{pools:?}");
        }
    }

    #[test]
    fn manifests_parse_with_defaults() {
        let pools =
            parse_ip_pool_manifests(include_str!("../../../fixtures/pools/floating-ips.yaml"))
                .unwrap();
        insta::assert_yaml_snapshot!(pools);
        let pools =
            parse_ip_pool_manifests(include_str!("../../../fixtures/pools/vxlan.yaml")).unwrap();
        assert!(pools
            .iter()
            .all(|p| p.encapsulation == Encapsulation::Vxlan));
        let v6 = pools.iter().find(|p| p.cidr.addr().is_ipv6()).unwrap();
        assert_eq!(v6.block_size, DEFAULT_BLOCK_SIZE_V6);
        // vxlanMode CrossSubnet on the v6 pool, Always on the v4 one.
        assert!(v6.cross_subnet);
        assert!(pools
            .iter()
            .filter(|p| p.cidr.addr().is_ipv4())
            .all(|p| !p.cross_subnet));
    }

    fn spec(cidr: &str) -> IpPoolSpec {
        IpPoolSpec {
            cidr: cidr.into(),
            ..Default::default()
        }
    }

    #[test]
    fn spec_rules() {
        let errors: Vec<String> = [
            spec("203.0.113.0"),
            spec("203.0.113.1/24"),
            IpPoolSpec {
                block_size: Some(19),
                ..spec("10.0.0.0/8")
            },
            IpPoolSpec {
                block_size: Some(115),
                ..spec("2001:db8::/48")
            },
            IpPoolSpec {
                block_size: Some(24),
                ..spec("203.0.113.0/25")
            },
            IpPoolSpec {
                encapsulation: Some(Encapsulation::Vxlan),
                vxlan_mode: Some(EncapMode::Always),
                ..spec("203.0.113.0/24")
            },
            IpPoolSpec {
                ipip_mode: Some(EncapMode::Always),
                vxlan_mode: Some(EncapMode::CrossSubnet),
                ..spec("203.0.113.0/24")
            },
            IpPoolSpec {
                ipip_mode: Some(EncapMode::Always),
                ..spec("2001:db8::/48")
            },
            spec("169.254.0.0/24"),
            spec("0.0.0.0/0"),
            spec("fe80::/64"),
        ]
        .into_iter()
        .map(|s| s.into_pool("p").unwrap_err().to_string())
        .collect();
        insta::assert_yaml_snapshot!(errors);
        let modes = IpPoolSpec {
            ipip_mode: Some(EncapMode::Never),
            vxlan_mode: Some(EncapMode::CrossSubnet),
            ..spec("198.19.0.0/16")
        };
        assert_eq!(
            modes.into_pool("p").unwrap().encapsulation,
            Encapsulation::Vxlan
        );
    }

    #[test]
    fn manifest_errors_have_positions() {
        let errors: Vec<String> = [
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec:\n  cidr: 203.0.113.0/24\n  blokSize: 26\n",
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: a}\nspec:\n  cidr: 203.0.113.0/24\n---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: b}\nspec:\n  cidr: 203.0.113.0/24\n  ipipMode: Sometimes\n",
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {cidr: 10.0.0.0/8}\n",
            "",
        ]
        .into_iter()
        .map(|text| parse_ip_pool_manifests(text).unwrap_err().to_string())
        .collect();
        insta::assert_yaml_snapshot!(errors);
    }
}
