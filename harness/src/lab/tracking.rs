//! Connection tracking kept on in every node for the node's whole life: the
//! lab's own nftables table, not Felix's and not a backend's.
//!
//! The kernel tracks connections in a namespace only while some rule needs it
//! (nf_ct_netns_get, called by the NAT hooks and by every `ct` expression).
//! A lab node holds only floating-IP NAT rules, so when a change removed its
//! last one (the nftables backends delete their tables then), the node would
//! stop tracking and an established flow would lose its DNAT on its next
//! packet. A Calico node never does: Felix's filter rules always match on
//! conntrack state (felix/rules/static.go StaticFilterForwardChains and the
//! workload chains drop `ctstate INVALID` and accept `RELATED,ESTABLISHED`),
//! so tracking stays on whatever the NAT tables hold. One `ct state` rule
//! that changes no verdict gives a lab node the same.

use std::process::Stdio;

use super::error::LabError;
use super::netns::Netns;

/// The lab's table (`inet`, so both families are tracked).
pub const TRACKING_TABLE: &str = "fiph-lab-tracking";

/// The script that creates [`TRACKING_TABLE`]: a forward-hook chain whose only
/// rule counts invalid packets (no verdict, so it changes nothing but keeps
/// conntrack registered in the namespace).
pub(super) fn script() -> String {
    format!(
        "add table inet {TRACKING_TABLE}\n\
         add chain inet {TRACKING_TABLE} keep-conntrack {{ type filter hook forward priority 0 ; policy accept ; }}\n\
         add rule inet {TRACKING_TABLE} keep-conntrack ct state invalid counter \
         comment \"fip-harness lab: conntrack on, as Felix's ct state rules keep it on a Calico node\"\n"
    )
}

/// Create the lab's tracking table in `node`.
pub(super) fn keep_tracking(node: &Netns) -> Result<(), LabError> {
    let failed = |detail: String| LabError::Program {
        namespace: node.name().to_string(),
        program: "nft",
        detail,
    };
    let mut command = std::process::Command::new("nft");
    command
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = node.spawn(&mut command).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => failed(crate::programs::missing("nft").to_string()),
        _ => failed(e.to_string()),
    })?;
    {
        use std::io::Write;
        // Dropping the pipe at the end of this block ends nft's input.
        let mut pipe = child.stdin.take().expect("stdin was piped");
        pipe.write_all(script().as_bytes())
            .map_err(|e| failed(e.to_string()))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| failed(e.to_string()))?;
    if !output.status.success() {
        return Err(failed(format!(
            "{}: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_named_as_the_labs_and_its_rule_needs_conntrack() {
        let text = script();
        assert!(text.contains("add table inet fiph-lab-tracking"), "{text}");
        assert!(text.contains("ct state invalid counter"), "{text}");
        // No verdict: the rule must not change what the node forwards.
        for verdict in ["drop", "accept comment", "reject"] {
            assert!(!text.contains(&format!("counter {verdict}")), "{text}");
        }
    }
}
