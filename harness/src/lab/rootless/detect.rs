//! Whether this host lets a normal user create user namespaces, and if not,
//! which setting forbids it and how to allow it. Read when entering a user
//! namespace fails, so the message names the cause instead of a bare EPERM.

use std::fmt;

/// The kernel settings that can forbid unprivileged user namespaces.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UsernsSettings {
    /// `user.max_user_namespaces` (0: nobody may create one).
    pub max_user_namespaces: Option<u64>,
    /// `kernel.unprivileged_userns_clone` (Debian's and older Ubuntu's patch; 0: only root).
    pub unprivileged_userns_clone: Option<u64>,
    /// `kernel.apparmor_restrict_unprivileged_userns` (Ubuntu 23.10 and later;
    /// 1: a new user namespace gets no capabilities unless a profile allows it).
    pub apparmor_restrict_unprivileged_userns: Option<u64>,
}

/// The setting that forbids user namespaces here, with the value that allows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blocker {
    pub setting: &'static str,
    pub value: u64,
    pub allow: u64,
}

const SETTINGS: [&str; 3] = [
    "user.max_user_namespaces",
    "kernel.unprivileged_userns_clone",
    "kernel.apparmor_restrict_unprivileged_userns",
];

/// One setting's check: its name, its value (if readable), whether that
/// value forbids user namespaces, and the value that allows them.
type Check = (&'static str, Option<u64>, fn(u64) -> bool, u64);

impl UsernsSettings {
    /// The settings as this host has them (a missing file: the kernel has no such setting).
    pub fn read() -> Self {
        let read = |key: &str| {
            std::fs::read_to_string(format!("/proc/sys/{}", key.replace('.', "/")))
                .ok()
                .and_then(|text| text.trim().parse().ok())
        };
        Self {
            max_user_namespaces: read(SETTINGS[0]),
            unprivileged_userns_clone: read(SETTINGS[1]),
            apparmor_restrict_unprivileged_userns: read(SETTINGS[2]),
        }
    }

    /// The first setting that forbids a normal user's user namespaces, if any.
    pub fn blocker(&self) -> Option<Blocker> {
        let checks: [Check; 3] = [
            (
                SETTINGS[0],
                self.max_user_namespaces,
                |v: u64| v == 0,
                15000,
            ),
            (
                SETTINGS[1],
                self.unprivileged_userns_clone,
                |v: u64| v == 0,
                1,
            ),
            (
                SETTINGS[2],
                self.apparmor_restrict_unprivileged_userns,
                |v: u64| v != 0,
                0,
            ),
        ];
        checks
            .into_iter()
            .find_map(|(setting, value, forbids, allow)| {
                value.filter(|v| forbids(*v)).map(|value| Blocker {
                    setting,
                    value,
                    allow,
                })
            })
    }
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "user namespaces are disabled for normal users on this host ({} = {}). \
             Enable them with `sudo sysctl -w {}={}` (and a file in /etc/sysctl.d/ to keep it \
             after a reboot)",
            self.setting, self.value, self.setting, self.allow
        )?;
        if self.setting == SETTINGS[2] {
            write!(
                f,
                ", or an AppArmor profile that allows `userns,` for fip-harness"
            )?;
        }
        write!(f, ", or run as root with sudo")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: Option<u64>, clone: Option<u64>, apparmor: Option<u64>) -> UsernsSettings {
        UsernsSettings {
            max_user_namespaces: max,
            unprivileged_userns_clone: clone,
            apparmor_restrict_unprivileged_userns: apparmor,
        }
    }

    #[test]
    fn a_host_that_allows_user_namespaces_has_no_blocker() {
        assert_eq!(settings(Some(96365), None, None).blocker(), None);
        assert_eq!(settings(Some(1), Some(1), Some(0)).blocker(), None);
        // A kernel without any of the settings forbids nothing we can name.
        assert_eq!(UsernsSettings::default().blocker(), None);
    }

    #[test]
    fn each_setting_that_forbids_them_is_named_with_the_value_that_allows_them() {
        let max = settings(Some(0), Some(1), Some(0)).blocker().unwrap();
        assert_eq!((max.setting, max.value, max.allow), (SETTINGS[0], 0, 15000));
        let debian = settings(Some(100), Some(0), None).blocker().unwrap();
        assert_eq!((debian.setting, debian.allow), (SETTINGS[1], 1));
        let ubuntu = settings(Some(100), None, Some(1)).blocker().unwrap();
        assert_eq!(
            (ubuntu.setting, ubuntu.value, ubuntu.allow),
            (SETTINGS[2], 1, 0)
        );
    }

    #[test]
    fn the_message_says_how_to_enable_them_or_use_sudo() {
        let text = settings(Some(0), None, None).blocker().unwrap().to_string();
        assert!(text.contains("user.max_user_namespaces = 0"), "{text}");
        assert!(
            text.contains("sudo sysctl -w user.max_user_namespaces=15000"),
            "{text}"
        );
        assert!(text.ends_with("or run as root with sudo"), "{text}");
        let apparmor = settings(None, None, Some(1)).blocker().unwrap().to_string();
        assert!(apparmor.contains("kernel.apparmor_restrict_unprivileged_userns=0"));
        assert!(apparmor.contains("AppArmor profile"), "{apparmor}");
    }
}
