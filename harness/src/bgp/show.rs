//! What `show protocols` and `show route` say, parsed from BIRD 1.6's reply
//! lines (see [`super::birdc`]).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Serialize;

/// One reply line of BIRD's control socket: its code (the previous one's for
/// a continuation) and text. [`super::birdc`] reads them; this file parses them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    pub text: String,
}

/// BIRD's code for a `show protocols` line.
const PROTOCOL_LINE: u16 = 1002;
/// BIRD's code for a `show route` line.
const ROUTE_LINE: u16 = 1007;

/// One line of `show protocols`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProtocolStatus {
    pub name: String,
    /// `BGP`, `Kernel`, `Device`, `Direct`, `Static`.
    pub protocol: String,
    /// `up`, `start`, `down`...
    pub state: String,
    /// For BGP the session state: `Established`, `Connect`, `Active`...
    pub info: String,
}

impl ProtocolStatus {
    /// A BGP session that carries routes.
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// One route of `show route`: a prefix may have several, from different
/// protocols or peers; `best` marks the one BIRD selected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BirdRoute {
    pub prefix: IpNet,
    pub protocol: String,
    pub best: bool,
    /// Gateways (`via`, and each hop of a multipath route).
    pub gateways: Vec<IpAddr>,
    /// What BIRD prints before the protocol: `via 198.18.0.11 on eth0`,
    /// `blackhole`, `dev eth0`, `multipath`.
    pub target: String,
}

pub fn parse_protocols(reply: &[ReplyLine]) -> Vec<ProtocolStatus> {
    reply
        .iter()
        .filter(|line| line.code == PROTOCOL_LINE)
        .filter_map(|line| {
            let mut fields = line.text.split_whitespace();
            let name = fields.next()?.to_string();
            let protocol = fields.next()?.to_string();
            let _table = fields.next()?;
            let state = fields.next()?.to_string();
            let _since = fields.next()?;
            let info = fields.collect::<Vec<_>>().join(" ");
            Some(ProtocolStatus {
                name,
                protocol,
                state,
                info,
            })
        })
        .collect()
}

pub fn parse_routes(reply: &[ReplyLine]) -> Vec<BirdRoute> {
    let mut routes: Vec<BirdRoute> = Vec::new();
    let mut prefix: Option<IpNet> = None;
    for line in reply.iter().filter(|line| line.code == ROUTE_LINE) {
        let text = line.text.as_str();
        if let Some(hop) = text.strip_prefix('\t') {
            // A hop of the multipath route above: `via X on eth0 weight 1`.
            if let (Some(route), Some(gateway)) = (routes.last_mut(), via(hop)) {
                route.gateways.push(gateway);
            }
            continue;
        }
        let rest = if text.starts_with(char::is_whitespace) {
            text.trim_start()
        } else {
            let Some((first, rest)) = text.split_once(char::is_whitespace) else {
                continue;
            };
            prefix = first.parse().ok();
            rest.trim_start()
        };
        let (Some(prefix), Some((target, source))) = (prefix, rest.split_once('[')) else {
            continue;
        };
        let Some((inside, after)) = source.split_once(']') else {
            continue;
        };
        let target = target.trim().to_string();
        routes.push(BirdRoute {
            prefix,
            protocol: inside.split_whitespace().next().unwrap_or("").to_string(),
            best: after.trim_start().starts_with('*'),
            gateways: via(&target).into_iter().collect(),
            target,
        });
    }
    routes
}

/// The gateway of `via <address> ...`.
fn via(text: &str) -> Option<IpAddr> {
    let mut words = text.split_whitespace();
    (words.next()? == "via").then_some(())?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, lines: &[&str]) -> Vec<ReplyLine> {
        lines
            .iter()
            .map(|text| ReplyLine {
                code,
                text: text.to_string(),
            })
            .collect()
    }

    #[test]
    fn protocols_with_their_session_state() {
        let mut lines = reply(
            2002,
            &["name     proto    table    state  since       info"],
        );
        lines.extend(reply(
            PROTOCOL_LINE,
            &[
                "device1  Device   master   up     13:40:11    ",
                "Mesh_198_18_0_11 BGP      master   up     13:40:12    Established   ",
                "Global_198_18_0_1 BGP      master   start  13:40:11    Active        Socket: Connection refused",
            ],
        ));
        let protocols = parse_protocols(&lines);
        insta::assert_debug_snapshot!(protocols);
        assert!(protocols[1].established());
        assert!(!protocols[2].established());
    }

    #[test]
    fn routes_group_alternatives_and_multipath_hops_under_their_prefix() {
        let lines = reply(
            ROUTE_LINE,
            &[
                "203.0.113.10/32    via 198.18.0.10 on br-nodes [Node_node_a 13:40:12] * (100/0) [i]",
                "                   via 198.18.0.11 on br-nodes [Node_node_b 13:40:12] (100/0) [i]",
                "198.19.0.0/26      blackhole [static1 13:40:11] * (200)",
                "203.0.113.20/32    multipath [kernel1 13:40:13] * (10)",
                "\tvia 198.18.0.10 on eth0 weight 1",
                "\tvia 198.18.0.11 on eth0 weight 1",
            ],
        );
        insta::assert_debug_snapshot!(parse_routes(&lines));
    }
}
