use rstest::rstest;

use super::*;

#[rstest]
#[case("v3.32", Release::new(32, 1))]
#[case("3.32", Release::new(32, 1))]
#[case("v3.28", Release::new(28, 5))]
#[case("v3.31.5", Release::new(31, 5))]
#[case("v3.31.0", Release::new(31, 0))]
#[case("v3.29.7", Release::new(29, 7))]
fn a_known_release_parses(#[case] text: &str, #[case] release: Release) {
    assert_eq!(text.parse::<Release>(), Ok(release));
}

#[rstest]
#[case("v3.27")]
#[case("v3.33")]
#[case("v3.32.2")]
#[case("v4.0")]
#[case("v3")]
#[case("v3.31.")]
#[case("v3.31.5.1")]
#[case("v3.+31")]
#[case("latest")]
#[case("")]
fn an_unknown_release_is_refused_naming_it_and_the_known_ones(#[case] text: &str) {
    let error = text.parse::<Release>().unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "unknown Calico release '{text}': the harness knows v3.28 (v3.28.0..v3.28.5), \
             v3.29 (v3.29.0..v3.29.7), v3.30 (v3.30.0..v3.30.7), v3.31 (v3.31.0..v3.31.7), \
             v3.32 (v3.32.0..v3.32.1)"
        )
    );
}

#[test]
fn the_default_is_the_newest_release() {
    assert_eq!(Release::default().to_string(), "v3.32.1");
}

#[rstest]
#[case("v3.28", false)]
#[case("v3.28.0", false)]
#[case("v3.29.0", true)]
#[case("v3.30", true)]
#[case("v3.32", true)]
fn nftables_mode_came_in_v3_29(#[case] text: &str, #[case] has: bool) {
    let release: Release = text.parse().unwrap();
    assert_eq!(release.has(Behaviour::NftablesMode), has);
}

#[test]
fn a_backported_behaviour_is_in_each_branch_from_its_own_patch_on() {
    const SINCE: &[Release] = &[Release::new(31, 6), Release::new(32, 1)];
    let row = Versioned {
        behaviour: Behaviour::NftablesMode,
        what: "",
        source: "",
        commits: &["0"],
        since: SINCE,
    };
    let has = |text: &str| row.is_in(text.parse().unwrap());
    assert!(!has("v3.30.7"));
    assert!(!has("v3.31.5"));
    assert!(has("v3.31.6"));
    assert!(!has("v3.32.0"));
    assert!(has("v3.32.1"));
}

/// docs/fidelity.md's table of versioned behaviours says what VERSIONED says,
/// row for row.
#[test]
fn the_docs_table_of_releases_is_the_versioned_data() {
    let docs = include_str!("../../../docs/fidelity.md");
    let section = docs
        .split("\n## Calico releases\n")
        .nth(1)
        .expect("docs/fidelity.md has a '## Calico releases' section");
    let section = section.split("\n## ").next().unwrap_or(section);
    let rows: Vec<Vec<String>> = section
        .lines()
        .skip_while(|line| !line.starts_with("| behaviour |"))
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split(" | ")
                .map(|cell| cell.trim().to_string())
                .collect()
        })
        .collect();
    let expected: Vec<Vec<String>> = VERSIONED
        .iter()
        .map(|v| {
            vec![
                v.what.to_string(),
                v.since_text(),
                v.commits.join(", "),
                v.source.to_string(),
            ]
        })
        .collect();
    let found: Vec<Vec<String>> = rows.iter().map(|row| row[..4].to_vec()).collect();
    assert_eq!(
        found, expected,
        "docs/fidelity.md '## Calico releases' table"
    );
}

/// Felix's set of pools for NAT-outgoing under a release: from v3.31.6 and
/// v3.32.1 a LoadBalancer-only pool is out of it (so traffic to it is
/// masqueraded) and the set is `network-ip-pools`; before, every pool is in
/// `all-ipam-pools` (felix/dataplane/linux/masq_mgr.go `OnUpdate`).
#[rstest]
#[case("v3.30", true, true)]
#[case("v3.31.5", true, true)]
#[case("v3.31.6", false, false)]
#[case("v3.32.0", true, true)]
#[case("v3.32.1", false, false)]
fn load_balancer_pools_leave_the_set_of_pools_by_release(
    #[case] release: &str,
    #[case] in_set: bool,
    #[case] all_ipam_pools: bool,
) {
    use crate::calico::{ClusterState, IpPoolSpec};
    let spec = |cidr: &str, lb: bool| IpPoolSpec {
        cidr: cidr.into(),
        allowed_uses: lb.then(|| yaml_serde::from_str("[LoadBalancer]").unwrap()),
        ..IpPoolSpec::default()
    };
    let cluster = ClusterState {
        pools: vec![
            spec("198.19.0.0/16", false).into_pool("pods").unwrap(),
            spec("198.18.1.0/24", true).into_pool("lb").unwrap(),
        ],
        calico: release.parse().unwrap(),
        ..ClusterState::default()
    };
    let filter = crate::calico::desired::node_filter(&cluster, "node-a");
    let lb: ipnet::IpNet = "198.18.1.0/24".parse().unwrap();
    assert_eq!(filter.pools.contains(&lb), in_set);
    assert_eq!(filter.all_ipam_pools, all_ipam_pools);
}

#[test]
fn allowed_uses_are_read_and_an_unknown_use_refused() {
    use crate::calico::IpPoolSpec;
    let pool = |uses: &str| {
        IpPoolSpec {
            cidr: "198.18.1.0/24".into(),
            allowed_uses: Some(yaml_serde::from_str(uses).unwrap()),
            ..IpPoolSpec::default()
        }
        .into_pool("p")
    };
    assert!(pool("[LoadBalancer]").unwrap().load_balancer_only);
    assert!(!pool("[Workload, Tunnel]").unwrap().load_balancer_only);
    assert!(!pool("[Workload, LoadBalancer]").unwrap().load_balancer_only);
    assert_eq!(
        pool("[Gateway]").unwrap_err().to_string(),
        "pool `p`: allowedUses: unknown use `Gateway` (Workload, Tunnel, LoadBalancer)"
    );
}
