//! Felix's rule hashes: the `cali:<16 chars>` comment Felix puts on every rule it
//! writes, so that `iptables-save` output of the harness reads like a real node's.
//!
//! Felix (felix/iptables `Chain.RuleHashes`) hashes the chain name with SHA-224,
//! then for each rule SHA-224(previous hash || `-A <chain> HASH <match> <action>`),
//! and keeps the first 16 characters of the URL-safe base64 (no padding). The
//! crate has no SHA-2 dependency, and SHA-224 is small, so it lives here.

/// The hashes of the rules of one chain, in order, as Felix computes them for
/// iptables. `rules` are the rule bodies as Felix renders them (match then
/// action, e.g. `--destination 203.0.113.1 --jump DNAT --to-destination
/// 198.19.0.5`); felix/iptables/renderer.go RuleHashes hashes each as
/// `-A <chain> HASH <body>`.
pub(crate) fn rule_hashes(chain: &str, rules: &[String]) -> Vec<String> {
    let rendered: Vec<String> = rules
        .iter()
        .map(|rule| format!("-A {chain} HASH {rule}"))
        .collect();
    chained_hashes(chain, &rendered)
}

/// Felix's hash chain itself (felix/generictables/rules.go RuleHashes): the
/// chain name seeds it, each rule's text as its renderer writes it for hashing
/// (`rendered`) is chained in. nftables mode hashes the rule text as written to
/// nft (felix/nftables/renderer.go RuleHashes), iptables mode the `-A` line.
pub(crate) fn chained_hashes(chain: &str, rendered: &[String]) -> Vec<String> {
    let mut hash = sha224(chain.as_bytes()).to_vec();
    rendered
        .iter()
        .map(|text| {
            let mut input = hash.clone();
            input.extend_from_slice(text.as_bytes());
            hash = sha224(&input).to_vec();
            base64_url(&hash)[..16].to_string()
        })
        .collect()
}

const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

fn sha224(data: &[u8]) -> [u8; 28] {
    let mut state: [u32; 8] = [
        0xc1059ed8, 0x367cd507, 0x3070dd17, 0xf70e5939, 0xffc00b31, 0x68581511, 0x64f98fa7,
        0xbefa4fa4,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks_exact(64) {
        let mut w = [0u32; 64];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..64 {
            let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
            let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
            w[i] = w[i - 16]
                .wrapping_add(s0)
                .wrapping_add(w[i - 7])
                .wrapping_add(s1);
        }
        let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = state;
        for i in 0..64 {
            let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
            let ch = (e & f) ^ (!e & g);
            let t1 = h
                .wrapping_add(s1)
                .wrapping_add(ch)
                .wrapping_add(K[i])
                .wrapping_add(w[i]);
            let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
            let maj = (a & b) ^ (a & c) ^ (b & c);
            let t2 = s0.wrapping_add(maj);
            h = g;
            g = f;
            f = e;
            e = d.wrapping_add(t1);
            d = c;
            c = b;
            b = a;
            a = t1.wrapping_add(t2);
        }
        for (slot, value) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
            *slot = slot.wrapping_add(value);
        }
    }
    let mut out = [0u8; 28];
    for (i, word) in state.iter().take(7).enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&word.to_be_bytes());
    }
    out
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn sha224_matches_the_standard_vector() {
        // FIPS 180-4 example: SHA-224("abc").
        let hex: String = sha224(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            hex,
            "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"
        );
    }

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
}
