//! Which OS an image is (its family: Raspberry Pi OS or Ubuntu Server; for Raspberry Pi OS its
//! generation), and which first-boot route it takes.
//!
//! Bullseye and Bookworm run Imager-style `firstrun.sh` through `systemd.run=`; Trixie images
//! read a cloud-init NoCloud seed from the boot partition. Getting this wrong is not cosmetic:
//! a `systemd.run=` pointing at a missing script powers the board off, and a cloud-init seed on
//! an image without cloud-init is silently ignored. So the decision is made from the best
//! evidence available, in this order: the user's `os.init`, the catalog's `init_format`,
//! the root file system (`/etc/os-release`, cloud-init installed), the boot partition.
//!
//! Ubuntu Server for Raspberry Pi (22.04, 24.04 preinstalled server images) is the second
//! family. Its facts, from the sources that build the images:
//! - boot partition FAT32 labelled `system-boot`, mounted on `/boot/firmware`, root ext4
//!   labelled `writable` (livecd-rootfs `live-build/auto/config`, the `arm64+raspi` fstab
//!   line `LABEL=system-boot /boot/firmware vfat`; lubuntu-team/livecd-rootfs mirror of
//!   Launchpad's livecd-rootfs, commit 5fb3d42d, 2025-02-17);
//! - first boot is cloud-init only: `/etc/cloud/cloud.cfg.d/99-fake_cloud.cfg` says
//!   `datasource_list: [ NoCloud, None ]` with `NoCloud: fs_label: system-boot`
//!   (livecd-rootfs `live-build/ubuntu-cpc/hooks.d/chroot/999-ubuntu-image-customization.chroot`,
//!   last changed in 95103e3d, 2020-01-24), so the seed is `user-data`, `meta-data` and
//!   `network-config` on the boot partition, which the pi gadget ships as commented
//!   templates (canonical/pi-gadget, branch `24`, `configs/`, dacc611f, 2024-10-03);
//! - there is no Imager `firstrun.sh` and no `userconf` on Ubuntu: the `firstrun` route is
//!   refused ([`OsInfo::route_refusal`]).
//!
//! The family is decided from os-release's `ID`/`ID_LIKE` first, because Ubuntu's
//! `VERSION_ID` ("24.04") read as a Debian release number made Ubuntu 24.04 a "Trixie";
//! without a readable root, from the boot label `system-boot`.

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

/// A `VERSION_ID` pinode shows and compares: short, letters, digits, `.`, `-`, `_` (what
/// os-release(5) allows). Anything else in an image's os-release is dropped, so that a
/// release shown in messages cannot carry terminal controls.
fn is_plain_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 32
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
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

/// Which operating system family an image is. Decides the boot mount, the first user's
/// groups and which first-boot routes exist; engines use it to refuse what an OS cannot run
/// (microk8s needs snapd, which Ubuntu Server has and Raspberry Pi OS has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OsFamily {
    /// Raspberry Pi OS (and plain Debian/Raspbian images shaped like it): see [`Generation`].
    RaspberryPiOs,
    /// Ubuntu Server for Raspberry Pi: cloud-init only, boot partition `system-boot`.
    Ubuntu,
}

impl OsFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            OsFamily::RaspberryPiOs => "raspberry-pi-os",
            OsFamily::Ubuntu => "ubuntu",
        }
    }

    /// From os-release: `ID=ubuntu`, or an `ID_LIKE` naming ubuntu (derivatives). `None`
    /// when os-release names neither Ubuntu nor a Debian-family OS.
    fn from_os_release(release: &OsRelease) -> Option<OsFamily> {
        let id = release.id.as_deref().unwrap_or("");
        let like = release.id_like.as_deref().unwrap_or("");
        if id == "ubuntu" || like.split_whitespace().any(|w| w == "ubuntu") {
            Some(OsFamily::Ubuntu)
        } else if matches!(id, "debian" | "raspbian")
            || like.split_whitespace().any(|w| w == "debian")
        {
            Some(OsFamily::RaspberryPiOs)
        } else {
            None
        }
    }
}

impl std::fmt::Display for OsFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The boot partition label of Ubuntu's Raspberry Pi images (see the module comment).
const UBUNTU_BOOT_LABEL: &str = "system-boot";

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
    /// `/usr/lib/snapd/snapd` or `/usr/bin/snap` exists.
    pub has_snapd: bool,
    /// Whether glibc resolves mDNS (`.local`) names: `/etc/nsswitch.conf`'s `hosts:` line
    /// names an `mdns` module (libnss-mdns, as on Raspberry Pi OS); `None` without the file.
    pub resolves_mdns: Option<bool>,
}

/// Whether an `/etc/nsswitch.conf` resolves mDNS names: its `hosts:` line names one of
/// libnss-mdns' modules (`mdns4_minimal`, `mdns`, ...).
pub fn nsswitch_resolves_mdns(nsswitch: &str) -> bool {
    nsswitch.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.trim_start()
            .strip_prefix("hosts:")
            .is_some_and(|modules| modules.split_whitespace().any(|m| m.starts_with("mdns")))
    })
}

/// The decision, with the reasons for it (shown by `inspect` and in errors).
#[derive(Debug, Clone, Serialize)]
pub struct OsInfo {
    /// Raspberry Pi OS or Ubuntu. Serialised `raspberry-pi-os` / `ubuntu`.
    pub family: OsFamily,
    /// The Raspberry Pi OS generation; `unknown` for Ubuntu, which has none (see `release`).
    pub generation: Generation,
    /// os-release's `VERSION_ID` ("24.04", "12"); `None` without a readable os-release.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub release: Option<String>,
    pub init: InitRoute,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretty_name: Option<String>,
    /// Whether the root file system has cloud-init; `None` when it could not be read.
    #[serde(skip)]
    pub cloud_init_installed: Option<bool>,
    /// Whether the root file system has snapd (`/usr/lib/snapd/snapd` or `/usr/bin/snap`);
    /// `None` when it could not be read. Engines that install from snaps (microk8s) refuse an
    /// image with `Some(false)`; with `None` they can only rely on `family`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_snapd: Option<bool>,
    /// Whether the OS resolves `.local` names (see [`RootEvidence::resolves_mdns`]); `None`
    /// when unknown. Stock Ubuntu Server does not (no libnss-mdns): a node there cannot
    /// join a cluster at `FOUNDER.local`.
    #[serde(skip)]
    pub resolves_mdns: Option<bool>,
    pub evidence: Vec<String>,
    /// Who chose `init`, when it was not detected (for advice in errors).
    #[serde(skip)]
    pub chosen_by: Option<InitChooser>,
}

impl OsInfo {
    /// Where the running system mounts the boot partition.
    pub fn boot_mount(&self) -> &'static str {
        match self.family {
            OsFamily::Ubuntu => "/boot/firmware",
            OsFamily::RaspberryPiOs => self.generation.boot_mount(),
        }
    }

    /// How people name the OS: "Ubuntu 24.04 LTS" (LTS: an even year's April release), or
    /// the Raspberry Pi OS generation ("bookworm").
    pub fn describe(&self) -> String {
        match (self.family, self.release.as_deref()) {
            (OsFamily::Ubuntu, Some(release)) => {
                let lts = release
                    .split_once('.')
                    .and_then(|(y, m)| Some((y.parse::<u32>().ok()?, m)))
                    .is_some_and(|(year, month)| year % 2 == 0 && month == "04");
                format!("Ubuntu {release}{}", if lts { " LTS" } else { "" })
            }
            (OsFamily::Ubuntu, None) => "Ubuntu".to_string(),
            (OsFamily::RaspberryPiOs, _) => self.generation.to_string(),
        }
    }

    /// [`Self::describe`] with the family named for Raspberry Pi OS too: "Raspberry Pi OS
    /// bookworm", "Ubuntu 24.04 LTS".
    pub fn full_name(&self) -> String {
        match self.family {
            OsFamily::Ubuntu => self.describe(),
            OsFamily::RaspberryPiOs => format!("Raspberry Pi OS {}", self.generation),
        }
    }

    /// Why the chosen route cannot work on this OS, if it cannot: Ubuntu has no Imager
    /// `firstrun.sh` machinery (no `userconf`, no `raspberrypi-sys-mods`), so a
    /// `systemd.run=` script would run against tools that are not there.
    pub fn route_refusal(&self) -> Option<String> {
        match (self.family, self.init) {
            (OsFamily::Ubuntu, InitRoute::Firstrun) => Some(format!(
                "{} ({}) has no Raspberry Pi Imager first-boot support (firstrun.sh, \
                 userconf), only cloud-init; use {}",
                self.describe(),
                match self.chosen_by {
                    Some(by) => format!("{by} selects firstrun"),
                    None => "the OS catalog selects firstrun".to_string(),
                },
                self.chosen_by
                    .unwrap_or(InitChooser::Profile)
                    .ask_for(InitRoute::CloudInit)
            )),
            _ => None,
        }
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
    let family = if let Some(f) = release.and_then(OsFamily::from_os_release) {
        evidence.push(format!(
            "/etc/os-release on the root partition says ID={}",
            release.and_then(|r| r.id.as_deref()).unwrap_or("")
        ));
        f
    } else if boot.label.eq_ignore_ascii_case(UBUNTU_BOOT_LABEL) {
        evidence.push(format!(
            "boot partition labelled \"{UBUNTU_BOOT_LABEL}\" (Ubuntu for Raspberry Pi)"
        ));
        OsFamily::Ubuntu
    } else {
        OsFamily::RaspberryPiOs
    };
    // Debian release numbers only mean something for Debian's family: an os-release of
    // another OS (ID=fedora, VERSION_ID=40) says nothing about the generation.
    let debian_release = release.filter(|r| {
        r.id.is_none() || OsFamily::from_os_release(r) == Some(OsFamily::RaspberryPiOs)
    });
    let generation = if family == OsFamily::Ubuntu {
        Generation::Unknown
    } else if let Some(g) = debian_release.and_then(Generation::from_os_release) {
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
    } else if family == OsFamily::Ubuntu {
        // Ubuntu Server's only route. An image without cloud-init is refused when rendering
        // (`cloud_init_installed`), as on Raspberry Pi OS.
        evidence.push("Ubuntu Server boots through cloud-init".into());
        InitRoute::CloudInit
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
    let readable_root = root.filter(|r| r.os_release.is_some());
    OsInfo {
        family,
        generation,
        release: release
            .and_then(|r| r.version_id.clone())
            .filter(|v| is_plain_version(v)),
        init,
        pretty_name: release.and_then(|r| r.pretty_name.clone()),
        cloud_init_installed: readable_root.map(|r| r.has_cloud_init),
        has_snapd: readable_root.map(|r| r.has_snapd),
        resolves_mdns: readable_root.and_then(|r| r.resolves_mdns),
        evidence,
        chosen_by: forced.map(|f| f.by),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mdns_is_what_nsswitch_says() {
        let pi_os = "passwd: files\nhosts:          files mdns4_minimal [NOTFOUND=return] dns\n";
        assert!(nsswitch_resolves_mdns(pi_os));
        let ubuntu = "# hosts: files mdns\nhosts:          files dns\nnetworks: files\n";
        assert!(!nsswitch_resolves_mdns(ubuntu));
        assert!(!nsswitch_resolves_mdns("hosts: files dns # mdns later\n"));
    }

    fn root(codename: &str, cloud_init: bool) -> RootEvidence {
        RootEvidence {
            os_release: Some(OsRelease {
                version_codename: Some(codename.into()),
                ..Default::default()
            }),
            has_cloud_init: cloud_init,
            has_snapd: false,
            resolves_mdns: None,
        }
    }

    /// The root of an Ubuntu Server image (os-release of 24.04 or 22.04).
    fn ubuntu(version_id: &str, codename: &str) -> RootEvidence {
        RootEvidence {
            os_release: Some(OsRelease {
                id: Some("ubuntu".into()),
                id_like: Some("debian".into()),
                version_id: Some(version_id.into()),
                version_codename: Some(codename.into()),
                pretty_name: Some(format!("Ubuntu {version_id}.1 LTS")),
            }),
            has_cloud_init: true,
            has_snapd: true,
            resolves_mdns: None,
        }
    }

    fn ubuntu_boot() -> BootEvidence {
        BootEvidence {
            label: "system-boot".into(),
            has_cloud_init_seed: true,
            ..Default::default()
        }
    }

    #[test]
    fn ubuntu_is_ubuntu_not_trixie() {
        for (version, codename) in [("24.04", "noble"), ("22.04", "jammy")] {
            let info = detect(&ubuntu_boot(), Some(&ubuntu(version, codename)), None, None);
            assert_eq!(info.family, OsFamily::Ubuntu);
            assert_eq!(info.generation, Generation::Unknown, "{version}");
            assert_eq!(info.release.as_deref(), Some(version));
            assert_eq!(info.init, InitRoute::CloudInit);
            assert_eq!(info.has_snapd, Some(true));
            assert_eq!(info.boot_mount(), "/boot/firmware");
            assert_eq!(info.describe(), format!("Ubuntu {version} LTS"));
            assert_eq!(info.route_refusal(), None);
            let json = serde_json::to_value(&info).unwrap();
            assert_eq!(json["family"], "ubuntu");
            assert_eq!(json["release"], version);
        }
        // An Ubuntu derivative names ubuntu in ID_LIKE.
        let mut root = ubuntu("24.04", "noble");
        if let Some(r) = root.os_release.as_mut() {
            r.id = Some("pop".into());
            r.id_like = Some("ubuntu debian".into());
        }
        let info = detect(&BootEvidence::default(), Some(&root), None, None);
        assert_eq!(info.family, OsFamily::Ubuntu);
        // A VERSION_ID with terminal controls is not shown.
        let mut root = ubuntu("24.04", "noble");
        if let Some(r) = root.os_release.as_mut() {
            r.version_id = Some("24.04\x1b[2J".into());
        }
        let info = detect(&ubuntu_boot(), Some(&root), None, None);
        assert_eq!(
            (info.release.as_deref(), info.describe().as_str()),
            (None, "Ubuntu")
        );
        // Non-LTS releases are not called LTS.
        let info = detect(
            &ubuntu_boot(),
            Some(&ubuntu("24.10", "oracular")),
            None,
            None,
        );
        assert_eq!(info.describe(), "Ubuntu 24.10");
    }

    #[test]
    fn other_oses_release_numbers_are_no_generation() {
        let other = RootEvidence {
            os_release: Some(OsRelease {
                id: Some("fedora".into()),
                version_id: Some("40".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = detect(&BootEvidence::default(), Some(&other), None, None);
        assert_eq!(info.generation, Generation::Unknown);
        // Raspbian's does count.
        let raspbian = RootEvidence {
            os_release: Some(OsRelease {
                id: Some("raspbian".into()),
                id_like: Some("debian".into()),
                version_id: Some("12".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let info = detect(&BootEvidence::default(), Some(&raspbian), None, None);
        assert_eq!(
            (info.family, info.generation),
            (OsFamily::RaspberryPiOs, Generation::Bookworm)
        );
    }

    #[test]
    fn ubuntu_by_label_without_a_root() {
        let info = detect(&ubuntu_boot(), None, None, None);
        assert_eq!(
            (info.family, info.init, info.has_snapd),
            (OsFamily::Ubuntu, InitRoute::CloudInit, None)
        );
        assert!(info.evidence.iter().any(|e| e.contains("system-boot")));
        // Pi OS keeps its family without os-release too.
        let info = detect(&BootEvidence::default(), None, None, None);
        assert_eq!(info.family, OsFamily::RaspberryPiOs);
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["family"], "raspberry-pi-os");
    }

    #[test]
    fn firstrun_is_refused_on_ubuntu() {
        let info = detect(
            &ubuntu_boot(),
            Some(&ubuntu("24.04", "noble")),
            None,
            Some(ForcedInit {
                route: InitRoute::Firstrun,
                by: InitChooser::Profile,
            }),
        );
        assert_eq!(info.init, InitRoute::Firstrun);
        let why = info.route_refusal().unwrap();
        assert!(why.contains("Ubuntu 24.04 LTS"), "{why}");
        assert!(
            why.contains("os.init in the profile selects firstrun"),
            "{why}"
        );
        assert!(why.ends_with("use os.init: cloud-init"), "{why}");
        // Raspberry Pi OS may take either route.
        let info = detect(
            &BootEvidence::default(),
            Some(&root("trixie", true)),
            None,
            Some(ForcedInit {
                route: InitRoute::Firstrun,
                by: InitChooser::Flag,
            }),
        );
        assert_eq!(info.route_refusal(), None);
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
