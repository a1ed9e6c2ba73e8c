//! The pool-driven parts of a node's configuration: what calico/node renders
//! into bird_aggr.cfg and bird_ipam.cfg (bird6_*.cfg for IPv6).

use std::fmt::Write;

use ipnet::IpNet;

use crate::bgp::topology::{BgpNode, BgpTopology, ClusterRoutes};
use crate::calico::{Encapsulation, IpFamily, IpPool};

pub use crate::calico::felix::NORMAL_ROUTE_PRIORITY;
/// BIRD's largest integer (confd/pkg/resource/template `BirdIntMaxValue`).
pub const BIRD_INT_MAX: u32 = 2_147_483_647;
/// `birdOverridePreference` in bgp_processor.go: lets an elevated-priority
/// route from a peer beat a local workload route.
pub const OVERRIDE_PREFERENCE: u32 = 200;

fn family_of(net: &IpNet) -> IpFamily {
    IpFamily::of(&net.addr())
}

/// confd lists keys in text order of `<addr>-<len>`; blocks follow it.
fn key_order(blocks: &mut [IpNet]) {
    blocks.sort_by_key(|b| b.to_string().replace('/', "-"));
}

/// bird_aggr.cfg.template: a blackhole per block the node holds (the static
/// protocol) and `calico_aggr`, which exports each block and nothing inside
/// it unless Felix gave it an elevated priority.
pub fn aggregation(out: &mut String, node: &BgpNode, family: IpFamily) {
    let mut blocks: Vec<IpNet> = node
        .blocks
        .iter()
        .copied()
        .filter(|b| family_of(b) == family)
        .collect();
    key_order(&mut blocks);
    let host = family.host_prefix();
    let static_routes: Vec<&IpNet> = blocks.iter().filter(|b| b.prefix_len() != host).collect();
    out.push_str("# bird_aggr.cfg.template: the node's IPAM blocks.\n");
    out.push_str("template static static_template {\n");
    if static_routes.is_empty() {
        out.push_str("   # No IP blocks or static routes for this host.\n");
    } else {
        out.push_str("   # IP blocks for this host.\n");
        for block in &static_routes {
            let _ = writeln!(out, "   route {block} blackhole;");
        }
    }
    out.push_str("}\n\n");
    if !static_routes.is_empty() {
        out.push_str("protocol static from static_template {\n}\n\n");
    }
    out.push_str("# Aggregation of routes on this host; export the block, nothing beneath it.\n");
    out.push_str("function calico_aggr ()\n{\n");
    for block in &blocks {
        // The harness's IPAM confirms every affinity it hands out.
        let _ = writeln!(out, "      # Block {block} is implicitly confirmed.");
        let _ = writeln!(out, "      if ( net = {block} ) then {{ accept; }}");
        let _ = writeln!(
            out,
            "      if ( net ~ {block} && krt_metric < {NORMAL_ROUTE_PRIORITY} ) then {{ accept; }}"
        );
        let _ = writeln!(out, "      if ( net ~ {block} ) then {{ reject; }}");
    }
    out.push_str("}\n\n");
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Accept,
    Reject,
}

impl Action {
    fn text(self) -> &'static str {
        match self {
            Action::Accept => "accept",
            Action::Reject => "reject",
        }
    }
}

/// bgp_processor.go `emitFilterStatementForIPPools`: one `if (net ~ cidr)`
/// statement, kept only when it has the action the caller collects.
fn statement(
    cidr: &IpNet,
    extra: &str,
    action: Action,
    wanted: Option<Action>,
    comment: &str,
) -> Option<String> {
    if wanted.is_some_and(|w| w != action) {
        return None;
    }
    let mut text = if extra.is_empty() {
        format!("  if (net ~ {cidr}) then {{ {}; }}", action.text())
    } else {
        format!("  if (net ~ {cidr}) then {{ {extra} {}; }}", action.text())
    };
    if !comment.is_empty() {
        let _ = write!(text, " # {comment}");
    }
    Some(text)
}

/// What `processIPPool` reads besides the pool: the cluster-route policy,
/// the list it writes (kernel or export), the action it collects, the node's
/// `network_v4` and the family.
#[derive(Clone, Copy)]
struct PoolContext<'a> {
    policy: ClusterRoutes,
    for_kernel: bool,
    wanted: Option<Action>,
    local_subnet: &'a str,
    family: IpFamily,
}

/// bgp_processor.go `extraStatementForKernelProgrammingIPIPNoEncap`: Calico's
/// BIRD fork sends an IPIP route out of `tunl0`, except, in CrossSubnet mode,
/// a route whose next hop is on the node's own subnet.
fn krt_tunnel(pool: &IpPool, local_subnet: &str) -> String {
    match (pool.encapsulation, pool.cross_subnet) {
        (Encapsulation::Ipip, false) => r#"krt_tunnel="tunl0";"#.to_string(),
        (Encapsulation::Ipip, true) => format!(
            r#"if (defined(bgp_next_hop)&&(bgp_next_hop ~ {local_subnet})) then krt_tunnel=""; else krt_tunnel="tunl0";"#
        ),
        _ => String::new(),
    }
}

/// bgp_processor.go `processIPPool`. A disabled pool is still listed: the
/// pool key confd reads carries disabled pools, and only IPAM skips them.
fn pool_statement(pool: &IpPool, context: PoolContext) -> Option<String> {
    let cidr = &pool.cidr;
    let wanted = context.wanted;
    if pool.disable_bgp_export && !context.for_kernel {
        return statement(cidr, "", Action::Reject, wanted, "BGP export is disabled.");
    }
    let bird_programs = match pool.encapsulation {
        Encapsulation::Vxlan if context.for_kernel => {
            return statement(
                cidr,
                "",
                Action::Reject,
                wanted,
                "VXLAN routes are handled by Felix.",
            )
        }
        Encapsulation::Vxlan => return statement(cidr, "", Action::Accept, wanted, ""),
        // clusterRoutePolicy.programsPool.
        Encapsulation::Ipip => context.policy.bird_programs_ipip(),
        Encapsulation::None => context.policy.bird_programs_no_encap(),
    };
    if bird_programs {
        let extra = if context.for_kernel && context.family == IpFamily::V4 {
            krt_tunnel(pool, context.local_subnet)
        } else {
            String::new()
        };
        return statement(cidr, &extra, Action::Accept, wanted, "");
    }
    if context.for_kernel {
        return statement(
            cidr,
            "",
            Action::Reject,
            wanted,
            "Cluster routes are handled by Felix.",
        );
    }
    statement(cidr, "", Action::Accept, wanted, "")
}

/// The statements of one list, sorted as confd sorts them (`slices.Sort`).
fn pool_statements(pools: &[IpPool], context: PoolContext) -> Vec<String> {
    let mut lines: Vec<String> = pools
        .iter()
        .filter(|p| family_of(&p.cidr) == context.family)
        .filter_map(|p| pool_statement(p, context))
        .collect();
    lines.sort();
    lines
}

/// bird_ipam.cfg.template: `calico_export_to_bgp_peers` (what leaves the node)
/// and the `calico_kernel_programming` filter (what BIRD may program into the
/// node's kernel).
pub fn ipam(out: &mut String, topology: &BgpTopology, node: &BgpNode, family: IpFamily) {
    let pools = &topology.pools;
    let local_subnet = node.ipv4_network.to_string();
    let context = |for_kernel: bool, wanted: Option<Action>| PoolContext {
        policy: topology.cluster_routes,
        for_kernel,
        wanted,
        local_subnet: &local_subnet,
        family,
    };
    out.push_str("# bird_ipam.cfg.template: the IP pools' filters.\n");
    out.push_str(
        "function reject_local_routes () {\n\
         \x20 # Don't export local routes learned via BPF as they should never leave the node.\n\
         \x20 if (defined(ifname)) then {\n\
         \x20    if (ifname ~ \"bpf*.cali\") then {\n\
         \x20       reject;\n\
         \x20    }\n\
         \x20 }\n\
         }\n\n",
    );
    out.push_str("function calico_export_to_bgp_peers(bool internal_peer) {\n");
    out.push_str("  # filter code terminates when it calls `accept;` or `reject;`,\n");
    for line in pool_statements(pools, context(false, Some(Action::Reject))) {
        let _ = writeln!(out, "{line}");
    }
    // processIPPools: Felix's tunnel routes never go to iBGP peers; when
    // Felix programs the IPIP routes (BIRD does not), tunl0's too.
    let tunl0 = if topology.cluster_routes.bird_programs_ipip() {
        ""
    } else {
        " || (ifname ~ \"tunl0\")"
    };
    let _ = write!(
        out,
        "  if (internal_peer) then {{\n\
         \x20   if (defined(ifname)) then {{\n\
         \x20     if ((ifname ~ \"*.cali\") || (ifname ~ \"*.calico\"){tunl0}) then {{\n\
         \x20       reject;\n\
         \x20     }}\n\
         \x20   }}\n\
         \x20 }}\n",
    );
    out.push_str("  reject_local_routes();\n  apply_communities();\n  calico_aggr();\n");
    for line in pool_statements(pools, context(false, Some(Action::Accept))) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("}\n\n");

    out.push_str("filter calico_kernel_programming {\n");
    // populateNodeConfig `SetMetricForBGPRoutes`: a route from a peer goes
    // into the kernel with the priority its sender's Felix gave it.
    let _ = write!(
        out,
        "  if (defined(source) && (source = RTS_BGP) && !defined(krt_metric)) then {{\n\
         \x20     krt_metric = {NORMAL_ROUTE_PRIORITY};\n\
         \x20     if (defined(bgp_local_pref)) then {{\n\
         \x20         krt_metric = {BIRD_INT_MAX} - bgp_local_pref;\n\
         \x20     }}\n\
         \x20     if (krt_metric < {NORMAL_ROUTE_PRIORITY}) then {{\n\
         \x20         preference = {OVERRIDE_PREFERENCE};\n\
         \x20     }}\n\
         \x20 }}\n"
    );
    // processIPPools: IPv6 lists only the rejections (accept is the default
    // at the end); IPv4 lists both.
    let wanted = match family {
        IpFamily::V4 => None,
        IpFamily::V6 => Some(Action::Reject),
    };
    for line in pool_statements(pools, context(true, wanted)) {
        let _ = writeln!(out, "{line}");
    }
    out.push_str("  accept;\n}\n\n");
}
