//! The `bench lab` baselines: the lab's topology (IPv4, as `Lab::build` +
//! `add_pods` wire it) as shell scripts of `ip` commands, written two ways:
//! one process per command, and the script a person who cares about speed
//! writes, one `ip -batch` per namespace.

use std::fmt::Write as _;

use crate::lab::spec::namespace_name;
use crate::lab::PodSpec;

/// One namespace's share of the topology: `ip` commands run inside it (without
/// `ip -n NS`), then its sysctls (written after, so that per-interface keys of
/// the interfaces it just made exist).
struct NamespacePlan {
    name: String,
    commands: Vec<String>,
    sysctls: Vec<String>,
}

/// The whole topology, namespaces in an order that works: each creates the
/// veths whose peers the later ones configure.
pub struct Topology {
    namespaces: Vec<NamespacePlan>,
}

const NO_DAD: &str = "net.ipv6.conf.all.accept_dad=0 net.ipv6.conf.default.accept_dad=0";
const NODE_SYSCTLS: &str = "net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
    net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
    net.ipv4.conf.all.send_redirects=0 net.ipv4.conf.default.send_redirects=0 \
    net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0 \
    net.ipv6.conf.all.accept_redirects=0";

impl Topology {
    /// `nodes` nodes (node-i holding 198.19.i.0/26), the external host
    /// `client`, the fabric, and `pods` on them.
    pub fn new(lab: &str, nodes: usize, pods: &[PodSpec]) -> Self {
        let fabric_ns = namespace_name(lab, "fabric");
        let client_ns = namespace_name(lab, "client");
        let mut fabric = NamespacePlan {
            name: fabric_ns,
            commands: vec![
                "link set lo up".into(),
                "link add br-nodes up type bridge".into(),
                "link add br-ext up type bridge".into(),
                "addr add 198.18.0.1/24 dev br-nodes".into(),
                "addr add 198.18.1.1/24 dev br-ext".into(),
                format!("link add x0 master br-ext up type veth peer name eth0 netns {client_ns}"),
            ],
            sysctls: vec![format!(
                "net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.rp_filter=0 \
                 net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 {NO_DAD}"
            )],
        };
        let client = NamespacePlan {
            name: client_ns,
            commands: vec![
                "link set lo up".into(),
                "link set eth0 up".into(),
                "addr add 198.18.1.10/24 dev eth0".into(),
                "route add default via 198.18.1.1".into(),
            ],
            sysctls: vec![NO_DAD.into()],
        };
        let mut node_plans = Vec::new();
        let mut pod_plans = Vec::new();
        for i in 0..nodes {
            let node_name = format!("node-{i}");
            let node_ns = namespace_name(lab, &node_name);
            fabric.commands.push(format!(
                "link add n{i} master br-nodes up type veth peer name eth0 netns {node_ns}"
            ));
            fabric
                .commands
                .push(format!("route add 198.19.{i}.0/26 via 198.18.0.{}", 10 + i));
            let mut node = NamespacePlan {
                name: node_ns,
                commands: vec![
                    "link set lo up".into(),
                    "link set eth0 up".into(),
                    format!("addr add 198.18.0.{}/24 dev eth0", 10 + i),
                    "route add default via 198.18.0.1".into(),
                ],
                sysctls: vec![NODE_SYSCTLS.into(), NO_DAD.into()],
            };
            for k in 0..nodes {
                node.commands.push(if k == i {
                    format!("route add blackhole 198.19.{k}.0/26")
                } else {
                    format!("route add 198.19.{k}.0/26 via 198.18.0.{}", 10 + k)
                });
            }
            for pod in pods.iter().filter(|p| p.node == node_name) {
                let pod_ns = namespace_name(lab, &pod.name);
                let cali = &pod.interface;
                let address = pod.addresses[0];
                node.commands.push(format!(
                    "link add {cali} address ee:ee:ee:ee:ee:ee up type veth peer name eth0 netns {pod_ns}"
                ));
                node.commands
                    .push(format!("route add {address} dev {cali} scope link"));
                node.sysctls.push(format!(
                    "net.ipv4.conf.{cali}.route_localnet=1 net.ipv4.conf.{cali}.proxy_arp=1 \
                     net.ipv4.conf.{cali}.forwarding=1 net.ipv4.neigh.{cali}.proxy_delay=0 \
                     net.ipv6.conf.{cali}.accept_ra=0"
                ));
                pod_plans.push(NamespacePlan {
                    name: pod_ns,
                    commands: vec![
                        "link set lo up".into(),
                        "link set eth0 up".into(),
                        format!("addr add {address}/32 dev eth0"),
                        "route add default via 169.254.1.1 dev eth0 onlink".into(),
                    ],
                    sysctls: vec![NO_DAD.into()],
                });
            }
            node_plans.push(node);
        }
        let mut namespaces = vec![fabric, client];
        namespaces.extend(node_plans);
        namespaces.extend(pod_plans);
        Self { namespaces }
    }

    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.namespaces.iter().map(|n| n.name.as_str())
    }

    /// One process per command: `ip netns add`, `ip -n NS ...`, one
    /// `ip netns exec NS sysctl` per namespace. Returns (processes, script).
    pub fn per_command(&self) -> (usize, String) {
        let mut lines = Vec::new();
        for ns in &self.namespaces {
            lines.push(format!("ip netns add {}", ns.name));
        }
        for ns in &self.namespaces {
            for command in &ns.commands {
                lines.push(format!("ip -n {} {command}", ns.name));
            }
            lines.push(sysctl_line(ns));
        }
        (lines.len(), lines.join("\n"))
    }

    /// One `ip netns del` per namespace.
    pub fn per_command_teardown(&self) -> (usize, String) {
        let lines: Vec<String> = self
            .namespaces()
            .map(|ns| format!("ip netns del {ns}"))
            .collect();
        (lines.len(), lines.join("\n"))
    }

    /// The fast script: every `netns add` in one `ip -batch`, then per
    /// namespace one `ip -n NS -batch` of its commands and one sysctl
    /// process (`ip -batch` cannot write sysctls). Returns (processes, script).
    pub fn batched(&self) -> (usize, String) {
        let mut script = String::from("ip -batch - <<'EOF'\n");
        for ns in &self.namespaces {
            let _ = writeln!(script, "netns add {}", ns.name);
        }
        script.push_str("EOF\n");
        for ns in &self.namespaces {
            let _ = writeln!(script, "ip -n {} -batch - <<'EOF'", ns.name);
            for command in &ns.commands {
                let _ = writeln!(script, "{command}");
            }
            script.push_str("EOF\n");
            let _ = writeln!(script, "{}", sysctl_line(ns));
        }
        (1 + 2 * self.namespaces.len(), script)
    }

    /// Every `netns del` in one `ip -batch`.
    pub fn batched_teardown(&self) -> (usize, String) {
        let mut script = String::from("ip -batch - <<'EOF'\n");
        for ns in self.namespaces() {
            let _ = writeln!(script, "netns del {ns}");
        }
        script.push_str("EOF\n");
        (1, script)
    }
}

fn sysctl_line(ns: &NamespacePlan) -> String {
    format!(
        "ip netns exec {} sysctl -qw {}",
        ns.name,
        ns.sysctls.join(" ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topology() -> Topology {
        let pods = vec![
            PodSpec::new(
                "a",
                "default",
                "node-0",
                vec!["198.19.0.2".parse().unwrap()],
            ),
            PodSpec::new(
                "b",
                "default",
                "node-1",
                vec!["198.19.1.2".parse().unwrap()],
            ),
        ];
        Topology::new("t", 2, &pods)
    }

    #[test]
    fn both_scripts_do_the_same_commands() {
        let t = topology();
        let (processes, per_command) = t.per_command();
        let (batched_processes, batched) = t.batched();
        // Fabric, client, two nodes, two pods.
        assert_eq!(t.namespaces().count(), 6);
        assert_eq!(batched_processes, 13);
        assert!(processes > batched_processes);
        for line in per_command.lines() {
            let command = line
                .strip_prefix("ip netns add ")
                .map(|ns| format!("netns add {ns}"))
                .or_else(|| {
                    line.strip_prefix("ip -n ")
                        .and_then(|rest| rest.split_once(' '))
                        .map(|(_, command)| command.to_string())
                })
                .unwrap_or_else(|| line.to_string());
            assert!(batched.contains(&command), "batched script lacks {command}");
        }
    }

    #[test]
    fn pod_veths_come_before_the_pod_configures_them() {
        let (_, script) = topology().batched();
        let veth = script.find("peer name eth0 netns fiph-t-a").unwrap();
        let pod = script.find("ip -n fiph-t-a -batch").unwrap();
        assert!(veth < pod);
        let (count, teardown) = topology().batched_teardown();
        assert_eq!(count, 1);
        assert_eq!(teardown.matches("netns del").count(), 6);
    }
}
