//! Felix's rule hashes: the `cali:<16 chars>` comment Felix puts on every rule it
//! writes, so that `iptables-save` output of the harness reads like a real node's.
//!
//! Felix (felix/generictables/rules.go `RuleHashes`) hashes the chain name with
//! SHA-224, then for each rule SHA-224(previous hash || the rule as rendered for
//! hashing: `-A <chain> HASH <match> <action>` in iptables mode, the nft rule
//! text in nftables mode), and keeps the first 16 characters of
//! `base64.RawURLEncoding` (URL-safe, no padding).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha224};

/// Characters of the encoded hash Felix keeps (generictables `HashLength`).
const HASH_LENGTH: usize = 16;

/// The hashes of the rules of one chain, in order, as Felix computes them for
/// iptables. `rules` are the rule bodies as Felix renders them (match then
/// action, e.g. `--destination 203.0.113.1 --jump DNAT --to-destination
/// 198.19.0.5`); felix/iptables/renderer.go `RuleHashes` hashes each as
/// `-A <chain> HASH <body>`.
pub(crate) fn rule_hashes(chain: &str, rules: &[String]) -> Vec<String> {
    let rendered: Vec<String> = rules
        .iter()
        .map(|rule| format!("-A {chain} HASH {rule}"))
        .collect();
    chained_hashes(chain, &rendered)
}

/// Felix's hash chain itself (felix/generictables/rules.go `RuleHashes`): the
/// chain name seeds it, then each rule's text as its renderer writes it for
/// hashing (`rendered`) is chained in. nftables mode hashes the rule exactly
/// as written to nft (felix/nftables/renderer.go `RuleHashes`), iptables mode
/// the `-A` line of [`rule_hashes`].
pub(crate) fn chained_hashes(chain: &str, rendered: &[String]) -> Vec<String> {
    let mut hash = Sha224::digest(chain.as_bytes());
    rendered
        .iter()
        .map(|text| {
            // Each hash chains in the previous one, so a rule's position and the
            // rules before it change its hash (as in Felix).
            hash = Sha224::new()
                .chain_update(hash)
                .chain_update(text)
                .finalize();
            let mut encoded = URL_SAFE_NO_PAD.encode(hash);
            encoded.truncate(HASH_LENGTH);
            encoded
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    // Expected hashes are copied from the nat table of a live Calico node (an
    // `iptables -t nat -L` listing published in a blog post), so these pin the
    // algorithm to Felix's, not to itself.
    #[rstest]
    #[case("PREROUTING", "--jump cali-PREROUTING", "6gwbT8clXdHdC1b1")]
    #[case("OUTPUT", "--jump cali-OUTPUT", "tVnHkvAo15HuiPy0")]
    #[case("POSTROUTING", "--jump cali-POSTROUTING", "O3lYWMrLQYEMJtB5")]
    #[case("cali-PREROUTING", "--jump cali-fip-dnat", "r6XmIziWUJsdOK6Z")]
    #[case("cali-OUTPUT", "--jump cali-fip-dnat", "GBTAv2p5CwevEyJm")]
    #[case("cali-POSTROUTING", "--jump cali-fip-snat", "Z-c7XtVd2Bq7s_hA")]
    fn first_rule_hash_matches_a_live_calico_node(
        #[case] chain: &str,
        #[case] rule: &str,
        #[case] expected: &str,
    ) {
        assert_eq!(rule_hashes(chain, &[rule.to_string()]), vec![expected]);
    }

    /// Later rules chain in the earlier ones' hashes: the second rule's hash
    /// differs from the same rule hashed first, and the first is unchanged by
    /// what follows it.
    #[test]
    fn each_hash_chains_in_the_rules_before_it() {
        let rule = "--jump cali-fip-dnat".to_string();
        let alone = rule_hashes("cali-PREROUTING", std::slice::from_ref(&rule));
        let twice = rule_hashes("cali-PREROUTING", &[rule.clone(), rule]);
        assert_eq!(twice[0], alone[0]);
        assert_ne!(twice[1], twice[0]);
        assert_eq!(twice[0], "r6XmIziWUJsdOK6Z");
    }

    /// Inputs longer than one 64-byte SHA-224 block (a long chain name and a long
    /// rule) against SHA-224 computed independently (Python `hashlib.sha224`,
    /// then `base64.urlsafe_b64encode`), the way Felix chains them.
    #[test]
    fn hashes_inputs_longer_than_one_block() {
        const LONG_EXPECTED: &str = "Nac9bRDobuIecXUW";
        let chain = "cali-fip-dnat-".repeat(6);
        let rule = format!(
            "--destination 203.0.113.10/32 {} --jump DNAT --to-destination 198.19.0.5",
            "--match comment --comment \"floating IP of default/web\" ".repeat(3)
        );
        assert!(chain.len() > 64 && rule.len() > 128);
        assert_eq!(rule_hashes(&chain, &[rule]), vec![LONG_EXPECTED]);
    }
}
