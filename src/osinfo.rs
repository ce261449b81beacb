//! Which Raspberry Pi OS generation an image is, and which first-boot route it takes.
//!
//! Bullseye and Bookworm run Imager-style `firstrun.sh` through `systemd.run=`; Trixie images
//! read a cloud-init NoCloud seed from the boot partition. Getting this wrong is not cosmetic:
//! a `systemd.run=` pointing at a missing script powers the board off, and a cloud-init seed on
//! an image without cloud-init is silently ignored. So the decision is made from the best
//! evidence available, in this order: the user's `os.init`, the catalog's `init_format`,
//! the root file system (`/etc/os-release`, cloud-init installed), the boot partition.

use serde::{Deserialize, Serialize};

use crate::rootfs::OsRelease;

/// The one generation type: serde, `FromStr`/`Display` and clap (`--generation`) share it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum Generation {
    Bullseye,
    Bookworm,
    Trixie,
    #[value(skip)]
    Unknown,
}

impl Generation {
    pub fn as_str(self) -> &'static str {
        match self {
            Generation::Bullseye => "bullseye",
            Generation::Bookworm => "bookworm",
            Generation::Trixie => "trixie",
            Generation::Unknown => "unknown",
        }
    }

    /// Where the running system mounts the boot partition.
    pub fn boot_mount(self) -> &'static str {
        match self {
            Generation::Bullseye => "/boot",
            _ => "/boot/firmware",
        }
    }

    fn from_os_release(release: &OsRelease) -> Option<Generation> {
        match release.version_codename.as_deref() {
            Some("bullseye") => return Some(Generation::Bullseye),
            Some("bookworm") => return Some(Generation::Bookworm),
            Some("trixie") => return Some(Generation::Trixie),
            _ => {}
        }
        // Later releases keep Trixie's layout until we learn otherwise.
        let major: u32 = release
            .version_id
            .as_deref()?
            .split('.')
            .next()?
            .parse()
            .ok()?;
        match major {
            11 => Some(Generation::Bullseye),
            12 => Some(Generation::Bookworm),
            13.. => Some(Generation::Trixie),
            _ => None,
        }
    }

    /// From `issue.txt` ("Raspberry Pi reference 2023-10-10"): the first Bookworm image is
    /// 2023-10-10, the first Trixie image 2025-10-01.
    fn from_issue(issue: &str) -> Option<Generation> {
        let date = issue.split_whitespace().find(|w| is_iso_date(w))?;
        Some(if date < "2023-10-10" {
            Generation::Bullseye
        } else if date < "2025-10-01" {
            Generation::Bookworm
        } else {
            Generation::Trixie
        })
    }
}

/// `YYYY-MM-DD` (digits only; the catalog's release dates and Pi OS issue dates).
pub(crate) fn is_iso_date(w: &str) -> bool {
    let b = w.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

impl std::fmt::Display for Generation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a node receives its first-boot customisation: the one route type, shared by the
/// CLI (`--init`, clap), the profile (`os.init`, through `profile::schema::InitChoice`),
/// `FromStr`/`Display` and serde.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum InitRoute {
    /// `firstrun.sh` run by `systemd.run=` (Raspberry Pi Imager's route up to Bookworm).
    #[serde(rename = "firstrun")]
    Firstrun,
    /// cloud-init NoCloud seed on the boot partition (Trixie).
    #[serde(rename = "cloud-init")]
    CloudInit,
    /// Neither could be established.
    #[serde(rename = "none")]
    #[value(skip)]
    None,
}

impl InitRoute {
    pub fn as_str(self) -> &'static str {
        match self {
            InitRoute::Firstrun => "firstrun",
            InitRoute::CloudInit => "cloud-init",
            InitRoute::None => "none",
        }
    }

    /// Maps the Imager catalog's `init_format`.
    fn from_init_format(format: &str) -> Option<InitRoute> {
        match format {
            "systemd" => Some(InitRoute::Firstrun),
            "cloudinit" | "cloudinit-rpi" => Some(InitRoute::CloudInit),
            _ => None,
        }
    }
}

/// Who chose the first-boot route instead of detection. Evidence and advice name it, so
/// that a message speaks of what the user actually typed (`--init`, not `os.init`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitChooser {
    /// The profile's `os.init`.
    Profile,
    /// The command line's `--init` (render).
    Flag,
    /// The route pinode recorded when it prepared the image (inspect).
    Prepared,
}

impl InitChooser {
    /// How to ask for `route` the way this chooser does (`--init firstrun`,
    /// `os.init: firstrun`); a prepared image's route is changed in the profile.
    pub fn ask_for(self, route: InitRoute) -> String {
        match self {
            InitChooser::Flag => format!("--init {route}"),
            InitChooser::Profile | InitChooser::Prepared => format!("os.init: {route}"),
        }
    }
}

impl std::fmt::Display for InitChooser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InitChooser::Profile => "os.init in the profile",
            InitChooser::Flag => "--init",
            InitChooser::Prepared => "the route pinode prepared the image for",
        })
    }
}

/// A first-boot route chosen rather than detected, and who chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForcedInit {
    pub route: InitRoute,
    pub by: InitChooser,
}

/// `firstrun` or `cloud-init` (a route one can ask for; `none` is only ever detected).
impl std::str::FromStr for InitRoute {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <InitRoute as clap::ValueEnum>::from_str(s, false)
    }
}

/// `bullseye`, `bookworm` or `trixie`.
impl std::str::FromStr for Generation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Generation as clap::ValueEnum>::from_str(s, false)
    }
}

impl std::fmt::Display for InitRoute {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the boot partition shows.
#[derive(Debug, Clone, Default)]
pub struct BootEvidence {
    pub(crate) label: String,
    pub(crate) issue_txt: Option<String>,
    /// Stock cloud-init seed templates (`user-data`, `meta-data`) are present.
    pub(crate) has_cloud_init_seed: bool,
}

/// What the root file system shows.
#[derive(Debug, Clone, Default)]
pub struct RootEvidence {
    pub os_release: Option<OsRelease>,
    pub has_cloud_init: bool,
}

/// The decision, with the reasons for it (shown by `inspect` and in errors).
#[derive(Debug, Clone, Serialize)]
pub struct OsInfo {
    pub generation: Generation,
    pub init: InitRoute,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// Whether the root file system has cloud-init; `None` when it could not be read.
    #[serde(skip)]
    pub cloud_init_installed: Option<bool>,
    pub evidence: Vec<String>,
    /// Who chose `init`, when it was not detected (for advice in errors).
    #[serde(skip)]
    pub chosen_by: Option<InitChooser>,
}

impl OsInfo {
    /// Where the running system mounts the boot partition.
    pub fn boot_mount(&self) -> &'static str {
        self.generation.boot_mount()
    }
}

/// Decides generation and route. `forced` is the route chosen by the profile's `os.init`
/// (when not `auto`), `--init` or an earlier preparation,
/// `init_format` the catalog's.
pub fn detect(
    boot: &BootEvidence,
    root: Option<&RootEvidence>,
    init_format: Option<&str>,
    forced: Option<ForcedInit>,
) -> OsInfo {
    let mut evidence = Vec::new();
    let release = root.and_then(|r| r.os_release.as_ref());
    let generation = if let Some(g) = release.and_then(Generation::from_os_release) {
        evidence.push(format!("/etc/os-release on the root partition says {g}"));
        g
    } else if let Some(g) = boot.issue_txt.as_deref().and_then(Generation::from_issue) {
        evidence.push(format!(
            "issue.txt on the boot partition dates the image to {g}"
        ));
        g
    } else if boot.label.eq_ignore_ascii_case("boot") {
        evidence.push("boot partition labelled \"boot\" (Bullseye and earlier)".into());
        Generation::Bullseye
    } else {
        evidence.push("no os-release, issue.txt or telling label found".into());
        Generation::Unknown
    };

    let init = if let Some(ForcedInit { route, by }) = forced {
        evidence.push(format!("{by} selects {route}"));
        route
    } else if let Some(route) = init_format.and_then(InitRoute::from_init_format) {
        evidence.push(format!(
            "the OS catalog gives init_format {}",
            init_format.unwrap_or("")
        ));
        route
    } else {
        match generation {
            Generation::Bullseye | Generation::Bookworm => InitRoute::Firstrun,
            Generation::Trixie | Generation::Unknown => {
                let has_cloud_init = match root {
                    Some(r) if r.os_release.is_some() => {
                        let has = r.has_cloud_init;
                        evidence.push(format!(
                            "cloud-init is {}installed on the root partition",
                            if has { "" } else { "not " }
                        ));
                        has
                    }
                    _ => {
                        let has = boot.has_cloud_init_seed;
                        if has {
                            evidence.push(
                                "the boot partition carries cloud-init seed templates".into(),
                            );
                        }
                        has
                    }
                };
                match (generation, has_cloud_init) {
                    (_, true) => InitRoute::CloudInit,
                    (Generation::Trixie, false) => InitRoute::Firstrun,
                    _ => InitRoute::None,
                }
            }
        }
    };
    OsInfo {
        generation,
        init,
        pretty_name: release.and_then(|r| r.pretty_name.clone()),
        cloud_init_installed: root
            .filter(|r| r.os_release.is_some())
            .map(|r| r.has_cloud_init),
        evidence,
        chosen_by: forced.map(|f| f.by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root(codename: &str, cloud_init: bool) -> RootEvidence {
        RootEvidence {
            os_release: Some(OsRelease {
                version_codename: Some(codename.into()),
                ..Default::default()
            }),
            has_cloud_init: cloud_init,
        }
    }

    #[test]
    fn os_release_decides_generation() {
        let boot = BootEvidence {
            label: "bootfs".into(),
            ..Default::default()
        };
        let info = detect(&boot, Some(&root("bookworm", false)), None, None);
        assert_eq!(
            (info.generation, info.init),
            (Generation::Bookworm, InitRoute::Firstrun)
        );
        let info = detect(&boot, Some(&root("trixie", true)), None, None);
        assert_eq!(
            (info.generation, info.init),
            (Generation::Trixie, InitRoute::CloudInit)
        );
        // The first Trixie image (2025-10-01) had no cloud-init.
        let info = detect(&boot, Some(&root("trixie", false)), None, None);
        assert_eq!(
            (info.generation, info.init),
            (Generation::Trixie, InitRoute::Firstrun)
        );
    }

    #[test]
    fn catalog_and_profile_override() {
        let boot = BootEvidence::default();
        let info = detect(&boot, Some(&root("trixie", true)), Some("systemd"), None);
        assert_eq!(info.init, InitRoute::Firstrun);
        let info = detect(
            &boot,
            Some(&root("trixie", true)),
            Some("systemd"),
            Some(ForcedInit {
                route: InitRoute::CloudInit,
                by: InitChooser::Flag,
            }),
        );
        assert_eq!(info.init, InitRoute::CloudInit);
        assert_eq!(info.chosen_by, Some(InitChooser::Flag));
        assert!(
            info.evidence
                .iter()
                .any(|e| e == "--init selects cloud-init")
        );
    }

    #[test]
    fn boot_partition_fallbacks() {
        let issue = BootEvidence {
            issue_txt: Some("Raspberry Pi reference 2024-11-19\n".into()),
            ..Default::default()
        };
        assert_eq!(
            detect(&issue, None, None, None).generation,
            Generation::Bookworm
        );
        let label = BootEvidence {
            label: "boot".into(),
            ..Default::default()
        };
        assert_eq!(
            detect(&label, None, None, None).generation,
            Generation::Bullseye
        );
        let nothing = detect(&BootEvidence::default(), None, None, None);
        assert_eq!(
            (nothing.generation, nothing.init),
            (Generation::Unknown, InitRoute::None)
        );
    }
}
