//! The external programs the harness, its tests, benchmarks and diagnostics run,
//! and the Debian package each comes from. `ci/install-deps.sh` installs every
//! package listed here (tests/install_deps.rs checks both that and that every
//! program the code spawns is listed), so a missing program is a setup fault the
//! message can name, not a puzzle.

use std::path::{Path, PathBuf};

/// (program, Debian/Ubuntu package providing it).
pub const PROGRAMS: &[(&str, &str)] = &[
    ("ip", "iproute2"),
    ("nft", "nftables"),
    // The iptables backend uses the legacy tools, so both backends can share a node.
    ("iptables-legacy-restore", "iptables"),
    ("ip6tables-legacy-restore", "iptables"),
    ("iptables-legacy-save", "iptables"),
    ("ip6tables-legacy-save", "iptables"),
    // Felix's feature detection (dataplane/features.rs): `iptables-legacy --version`.
    ("iptables-legacy", "iptables"),
    // A lab's fingerprint (lab/fingerprint.rs) reads both iptables of a node.
    ("iptables-nft-save", "iptables"),
    ("ip6tables-nft-save", "iptables"),
    // A lab's fingerprint and reset: sockets, TIME_WAIT ones killed (`ss -K`).
    ("ss", "iproute2"),
    // The iptables backend's NAT-outgoing IP sets (`ipset restore`), as Felix writes them.
    ("ipset", "ipset"),
    ("ping", "iputils-ping"),
    ("tshark", "tshark"),
    ("tcpdump", "tcpdump"),
    ("conntrack", "conntrack"),
    // BIRD 1.x, the daemon calico-node runs (confd templates in calico/confd).
    ("bird", "bird"),
    ("bird6", "bird"),
    ("birdc", "bird"),
    ("birdc6", "bird"),
    ("sh", "dash"),
    ("cat", "coreutils"),
    ("sleep", "coreutils"),
    ("true", "coreutils"),
    ("unshare", "util-linux"),
    // ci/test-runner and tests/cli_rootless.rs: user namespaces for normal users.
    ("nsenter", "util-linux"),
    // ci/test-as-user: the test binaries run as a user it creates.
    ("runuser", "util-linux"),
    // tests/cli_rootless.rs: root's `ls` beside a lab made as a bare uid.
    ("setpriv", "util-linux"),
    ("useradd", "passwd"),
    ("mount", "mount"),
    // tests/run_output.rs: a pseudo-terminal for `run`'s colour and status line.
    ("script", "bsdutils"),
    // tests/report_html.rs: report.html opened in a real (headless) browser.
    ("chromium", "chromium"),
    // drivers/nft-driver.py, the driver in another language (tests/driver_python.rs).
    ("python3", "python3"),
];

/// A program the harness needs is not on PATH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingProgram {
    pub program: String,
    /// Its Debian package, when the harness knows the program.
    pub package: Option<&'static str>,
}

impl std::fmt::Display for MissingProgram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let program = &self.program;
        match self.package {
            Some(package) => write!(
                f,
                "`{program}` is not installed (not found on PATH): install the Debian/Ubuntu \
                 package `{package}`; `ci/install-deps.sh` installs every program the harness runs"
            ),
            None => write!(f, "`{program}` is not installed (not found on PATH)"),
        }
    }
}

impl std::error::Error for MissingProgram {}

/// The package that provides `program`, if the harness knows it.
pub fn package_of(program: &str) -> Option<&'static str> {
    PROGRAMS
        .iter()
        .find(|(name, _)| *name == program)
        .map(|(_, package)| *package)
}

/// Where `program` is on PATH, or an error naming the package to install.
pub fn require_program(program: &str) -> Result<PathBuf, MissingProgram> {
    find_on_path(program).ok_or_else(|| missing(program))
}

/// The error for `program` not being installed (also used when a spawn fails
/// with "not found").
pub fn missing(program: &str) -> MissingProgram {
    MissingProgram {
        program: program.to_string(),
        package: package_of(program),
    }
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return is_executable(Path::new(program)).then(|| PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_its_package() {
        let error = require_program("conntrack-surely-absent").unwrap_err();
        assert_eq!(
            error.to_string(),
            "`conntrack-surely-absent` is not installed (not found on PATH)"
        );
        let known = missing("conntrack").to_string();
        assert!(known.contains("package `conntrack`"), "{known}");
    }

    #[test]
    fn a_present_program_is_found() {
        assert!(require_program("sh").unwrap().is_absolute());
    }

    #[test]
    fn every_program_is_listed_once() {
        let mut names: Vec<&str> = PROGRAMS.iter().map(|(p, _)| *p).collect();
        names.sort();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }
}
