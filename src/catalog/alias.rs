//! Stable names for catalog entries.
//!
//! Entry names in the catalog change wording between releases ("Raspberry Pi OS Lite",
//! "Raspberry Pi OS (Legacy, 64-bit) Lite"), but the download URLs follow one pattern:
//! `https://downloads.raspberrypi.com/<series>/images/<series>-<date>/<date>-raspios-<codename>-<arch>-lite.img.xz`.
//! Aliases come from that pattern:
//! - the series with `-` for `_`: `raspios-lite-arm64`, `raspios-lite-armhf`, `raspios-arm64`;
//! - for the "oldstable" series also `raspios-legacy-…` (what Imager calls it);
//! - the codename form from the file name: `raspios-bookworm-lite-arm64`, which stays valid
//!   when Bookworm moves from "current" to "legacy".
//!
//! Ubuntu Server images (in the catalog's "Other general-purpose OS" / "Ubuntu") are named
//! after their file, `http://cdimage.ubuntu.com/releases/<codename>/release/
//! ubuntu-<version>-preinstalled-server-<arch>+raspi.img.xz`:
//! - `ubuntu-server-<YY.MM>-<arch>`, the release without its point release
//!   (`ubuntu-server-24.04-arm64` is 24.04.1 today and 24.04.2 when the catalog moves on);
//! - `ubuntu-server-<codename>-<arch>` (`ubuntu-server-noble-arm64`).
//!
//! Every arm64 server release gets them, LTS or not (24.10 too), as every Raspberry Pi OS
//! series does. Ubuntu Desktop and Ubuntu Core get none (their first boot is not cloud-init
//! with a seed pinode can write: the catalog gives them `init_format: none`), and neither do
//! the armhf server images: their `config.txt` boots a 32-bit `vmlinuz`, which pinode's
//! default `arm_64bit=1` would make the firmware start as a 64-bit kernel (Raspberry Pi OS's
//! 32-bit images carry a 64-bit `kernel8.img` for that; Ubuntu's do not).
//!
//! `alias@YYYY-MM-DD` pins a release by its `release_date` (when the catalog lists it).

use super::{Catalog, OsEntry};
use crate::osinfo::is_iso_date;

/// Every alias of the image at `url` (empty for images that are neither Raspberry Pi OS nor
/// Ubuntu Server).
pub(crate) fn aliases_for(url: &str) -> Vec<String> {
    let Some(path) = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|(_, path)| path)
    else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let series = path.split('/').next().unwrap_or("");
    if series.starts_with("raspios") {
        let dashed = series.replace('_', "-");
        if dashed.contains("-oldstable") {
            out.push(dashed.replace("-oldstable", "-legacy"));
        }
        out.push(dashed);
    }
    // "2025-10-01-raspios-trixie-arm64-lite.img.xz" -> raspios-trixie-lite-arm64
    let file = path.rsplit('/').next().unwrap_or("");
    let stem = file.split(".img").next().unwrap_or("");
    if let (Some(date), Some(rest)) = (stem.get(..10), stem.get(11..))
        && is_iso_date(date)
    {
        let parts: Vec<&str> = rest.split('-').collect();
        if let ["raspios", codename, arch, flavour @ ..] = parts.as_slice() {
            let mut name = format!("raspios-{codename}");
            for f in flavour {
                name.push('-');
                name.push_str(f);
            }
            name.push('-');
            name.push_str(arch);
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out.extend(ubuntu_server_aliases(path));
    out
}

/// `releases/noble/release/ubuntu-24.04.1-preinstalled-server-arm64+raspi.img.xz` ->
/// `ubuntu-server-24.04-arm64`, `ubuntu-server-noble-arm64`.
fn ubuntu_server_aliases(path: &str) -> Vec<String> {
    let file = path.rsplit('/').next().unwrap_or("");
    let stem = file.split(".img").next().unwrap_or("");
    let Some(rest) = stem.strip_prefix("ubuntu-") else {
        return Vec::new();
    };
    let Some((version, rest)) = rest.split_once("-preinstalled-server-") else {
        return Vec::new();
    };
    let Some(arch) = rest.strip_suffix("+raspi") else {
        return Vec::new();
    };
    let mut numbers = version.split('.');
    let (Some(year), Some(month)) = (numbers.next(), numbers.next()) else {
        return Vec::new();
    };
    let is_number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let is_word = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    if !is_number(year) || !is_number(month) || !numbers.all(is_number) || arch != "arm64" {
        return Vec::new();
    }
    let mut out = vec![format!("ubuntu-server-{year}.{month}-{arch}")];
    // The codename is the folder after `releases/`.
    let mut parts = path.split('/');
    if parts.next() == Some("releases")
        && let Some(codename) = parts.next()
        && is_word(codename)
        && !is_number(codename)
    {
        out.push(format!("ubuntu-server-{codename}-{arch}"));
    }
    out
}

/// A parsed `alias[@YYYY-MM-DD]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spec {
    pub(crate) alias: String,
    pub(crate) date: Option<String>,
}

impl Spec {
    pub(crate) fn parse(spec: &str) -> Result<Spec, String> {
        let (alias, date) = match spec.split_once('@') {
            Some((alias, date)) => (alias, Some(date)),
            None => (spec, None),
        };
        if alias.is_empty()
            || !alias
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        {
            return Err(format!(
                "{} is not an OS alias (like raspios-lite-arm64, ubuntu-server-24.04-arm64 or \
                 raspios-lite-arm64@2025-10-01; see `pinode os list`)",
                crate::ui::quoted(spec)
            ));
        }
        if let Some(date) = date
            && !is_iso_date(date)
        {
            return Err(format!(
                "{}: the release after @ must be a date like 2025-10-01",
                crate::ui::quoted(spec)
            ));
        }
        Ok(Spec {
            alias: alias.to_string(),
            date: date.map(str::to_string),
        })
    }

    /// The newest entry with this alias (and date, when pinned).
    pub(crate) fn find<'e>(&self, entries: &'e [OsEntry]) -> Option<&'e OsEntry> {
        entries
            .iter()
            .filter(|e| e.aliases().contains(&self.alias))
            .filter(|e| match &self.date {
                Some(date) => e.release_date.as_deref() == Some(date.as_str()),
                None => true,
            })
            .max_by(|a, b| a.release_date.cmp(&b.release_date))
    }

    /// Why nothing matched, with what the catalog does offer.
    pub(crate) fn not_found_message(&self, catalog: &Catalog) -> String {
        let same_alias: Vec<&str> = catalog
            .entries
            .iter()
            .filter(|e| e.aliases().contains(&self.alias))
            .filter_map(|e| e.release_date.as_deref())
            .collect();
        if let (Some(date), false) = (&self.date, same_alias.is_empty()) {
            return format!(
                "the OS catalog {} lists {} only as released {}, not {date}; for an older \
                 release give its image URL as os.image with os.sha256",
                catalog.source,
                self.alias,
                same_alias.join(", ")
            );
        }
        let mut known: Vec<String> = catalog.entries.iter().flat_map(|e| e.aliases()).collect();
        known.sort();
        known.dedup();
        let known = if known.is_empty() {
            "no Raspberry Pi OS or Ubuntu Server images at all".to_string()
        } else {
            known.join(", ")
        };
        format!(
            "the OS catalog {} has no image called {} (it has: {known})",
            catalog.source,
            crate::ui::quoted(&self.alias)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_follow_the_download_url() {
        let url = "https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2025-10-02/2025-10-01-raspios-trixie-arm64-lite.img.xz";
        assert_eq!(
            aliases_for(url),
            ["raspios-lite-arm64", "raspios-trixie-lite-arm64"]
        );
        let url = "https://downloads.raspberrypi.com/raspios_oldstable_lite_armhf/images/raspios_oldstable_lite_armhf-2025-10-02/2025-10-01-raspios-bookworm-armhf-lite.img.xz";
        assert_eq!(
            aliases_for(url),
            [
                "raspios-legacy-lite-armhf",
                "raspios-oldstable-lite-armhf",
                "raspios-bookworm-lite-armhf"
            ]
        );
        let url = "https://downloads.raspberrypi.com/raspios_arm64/images/raspios_arm64-2025-10-02/2025-10-01-raspios-trixie-arm64.img.xz";
        assert_eq!(aliases_for(url), ["raspios-arm64", "raspios-trixie-arm64"]);
        assert!(aliases_for("https://example.com/ubuntu.img.xz").is_empty());
        // Ubuntu Server, as the catalog lists it.
        let url = "http://cdimage.ubuntu.com/releases/noble/release/ubuntu-24.04.1-preinstalled-server-arm64+raspi.img.xz";
        assert_eq!(
            aliases_for(url),
            ["ubuntu-server-24.04-arm64", "ubuntu-server-noble-arm64"]
        );
        let url = "http://cdimage.ubuntu.com/releases/jammy/release/ubuntu-22.04.5-preinstalled-server-arm64+raspi.img.xz";
        assert_eq!(
            aliases_for(url),
            ["ubuntu-server-22.04-arm64", "ubuntu-server-jammy-arm64"]
        );
        let url = "http://cdimage.ubuntu.com/releases/oracular/release/ubuntu-24.10-preinstalled-server-arm64+raspi.img.xz";
        assert_eq!(
            aliases_for(url),
            ["ubuntu-server-24.10-arm64", "ubuntu-server-oracular-arm64"]
        );
        // Desktop, Core and 32-bit: none.
        for url in [
            "http://cdimage.ubuntu.com/releases/jammy/release/ubuntu-22.04.5-preinstalled-server-armhf+raspi.img.xz",
            "http://cdimage.ubuntu.com/releases/noble/release/ubuntu-24.04.1-preinstalled-desktop-arm64+raspi.img.xz",
            "http://cdimage.ubuntu.com/ubuntu-core/24/stable/current/ubuntu-core-24-arm64+raspi.img.xz",
            "http://example.com/x/ubuntu-24.04-preinstalled-server-arm64.img.xz",
            "http://example.com/x/ubuntu-24-preinstalled-server-arm64+raspi.img.xz",
        ] {
            assert!(aliases_for(url).is_empty(), "{url}");
        }
        // Elsewhere than releases/<codename>/: only the version form.
        let url = "https://mirror.example/ubuntu-24.04-preinstalled-server-arm64+raspi.img.xz";
        assert_eq!(aliases_for(url), ["ubuntu-server-24.04-arm64"]);
        assert!(aliases_for("not a url").is_empty());
    }

    #[test]
    fn specs_parse_and_refuse() {
        assert_eq!(
            Spec::parse("raspios-lite-arm64@2025-10-01").unwrap(),
            Spec {
                alias: "raspios-lite-arm64".into(),
                date: Some("2025-10-01".into())
            }
        );
        assert_eq!(
            Spec::parse("ubuntu-server-24.04-arm64").unwrap().alias,
            "ubuntu-server-24.04-arm64"
        );
        assert!(Spec::parse("raspios-lite-arm64@latest").is_err());
        assert!(Spec::parse("Raspios").is_err());
        assert!(Spec::parse("").is_err());
    }
}
