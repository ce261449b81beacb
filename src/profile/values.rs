//! Checks for single values: hostnames, user names, keys, zones… Each returns a message that
//! explains what a valid value looks like, so the CLI and the wizard can show it as is.

use base64::Engine;

use crate::engine::k3s;
use crate::ui::quoted;

use super::{countries, keyboards, locales};

/// A DNS domain name (a search domain): dot-separated labels of letters, digits and '-'
/// (RFC 1123), at most 253 characters, a final dot allowed. One rule for the profile check and
/// the renderers' own guard, so neither accepts what the other refuses.
pub fn dns_name(name: &str) -> Result<(), String> {
    let shown = quoted(name);
    let name = name.strip_suffix('.').unwrap_or(name);
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if name.is_empty() || name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(format!(
            "{shown} is not a DNS domain name (labels of a-z, 0-9 and '-' separated by dots, \
             e.g. lab.example)"
        ));
    }
    Ok(())
}

/// An RFC 1123 label in lower case: what a hostname, an mDNS name and a K3s node name all
/// accept.
pub fn hostname(name: &str) -> Result<(), String> {
    let shown = quoted(name);
    if name.is_empty() || name.len() > 63 {
        return Err(format!(
            "{shown} is not a valid hostname: it must be 1 to 63 characters long"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        let hint = if c.is_ascii_uppercase() {
            " (use lower case)".to_string()
        } else if c == '_' {
            " (underscores are not allowed in hostnames; use '-')".to_string()
        } else {
            String::new()
        };
        return Err(format!(
            "{shown} is not a valid hostname: {} is not allowed; use a-z, 0-9 and '-'{hint}",
            quoted(&c.to_string())
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err(format!(
            "{shown} is not a valid hostname: it must not start or end with '-'"
        ));
    }
    Ok(())
}

/// Accounts that exist on Raspberry Pi OS or would give a false sense of identity.
const RESERVED_USERS: &[&str] = &[
    "root",
    "daemon",
    "bin",
    "sys",
    "sync",
    "games",
    "man",
    "lp",
    "mail",
    "news",
    "uucp",
    "proxy",
    "www-data",
    "backup",
    "list",
    "irc",
    "gnats",
    "nobody",
    "messagebus",
    "sshd",
    "avahi",
    "polkitd",
    "systemd-network",
    "systemd-resolve",
    "systemd-timesync",
    "_apt",
    // Groups of Raspberry Pi OS: useradd refuses a user whose name is an existing group.
    "adm",
    "tty",
    "disk",
    "kmem",
    "dialout",
    "fax",
    "voice",
    "cdrom",
    "floppy",
    "tape",
    "sudo",
    "audio",
    "dip",
    "operator",
    "src",
    "shadow",
    "utmp",
    "video",
    "sasl",
    "plugdev",
    "staff",
    "users",
    "nogroup",
    "input",
    "kvm",
    "render",
    "netdev",
    "gpio",
    "i2c",
    "spi",
    "lpadmin",
    "bluetooth",
    "ssl-cert",
    "crontab",
    "systemd-journal",
];

/// A user name Debian's `adduser` accepts (its default NAME_REGEX), not a system account.
pub fn user_name(name: &str) -> Result<(), String> {
    let shown = quoted(name);
    let valid = !name.is_empty()
        && name.len() <= 32
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !valid {
        return Err(format!(
            "{shown} is not a valid user name: use up to 32 characters a-z, 0-9, '_' and '-', \
             starting with a letter or '_'"
        ));
    }
    if RESERVED_USERS.contains(&name) {
        return Err(format!(
            "{shown} is a system account or group; choose another user name"
        ));
    }
    Ok(())
}

/// Key types OpenSSH accepts in authorized_keys.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// One OpenSSH public key: `type base64 [comment]`, whose encoded blob names the same type.
///
/// Errors quote the start of the value: it is the profile's own text. For lines read from a
/// key file use `ssh_public_key_line`, which quotes nothing.
pub fn ssh_public_key(key: &str) -> Result<(), String> {
    public_key(key, true)
}

/// A line of an `ssh_authorized_keys_file`. The file may be the wrong one (a private key, a
/// token file), so errors describe the problem without quoting any of its contents.
pub(crate) fn ssh_public_key_line(key: &str) -> Result<(), String> {
    public_key(key, false)
}

fn public_key(key: &str, quote: bool) -> Result<(), String> {
    let key = key.trim();
    let shown = |value: &str, what: &str| {
        if quote {
            quoted(&abbreviate(value))
        } else {
            what.to_string()
        }
    };
    if key.contains("PRIVATE KEY") {
        return Err("this is a PRIVATE key: give the public key (the .pub file) instead".into());
    }
    if key.contains(['\n', '\r', '\0']) {
        return Err("one key per entry: a key must not contain a line break".into());
    }
    let mut parts = key.split_whitespace();
    let (Some(kind), Some(blob)) = (parts.next(), parts.next()) else {
        return Err(format!(
            "{} is not an SSH public key (expected \"ssh-ed25519 AAAA… comment\")",
            shown(key, "the line")
        ));
    };
    if kind == "ssh-dss" {
        return Err(
            "DSA keys (ssh-dss) are refused by the OpenSSH of Bookworm and removed from \
                    Trixie's; use an ed25519 key (ssh-keygen -t ed25519)"
                .into(),
        );
    }
    if !KEY_TYPES.contains(&kind) {
        return Err(format!(
            "{} is not an SSH public key type (expected one of {})",
            shown(kind, "its first word"),
            KEY_TYPES.join(", ")
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .map_err(|_| format!("the {kind} key's data is not valid base64"))?;
    let embedded = decoded
        .get(..4)
        .map(|n| u32::from_be_bytes([n[0], n[1], n[2], n[3]]) as usize)
        .and_then(|n| decoded.get(4..4 + n));
    if embedded != Some(kind.as_bytes()) {
        return Err(format!(
            "the {kind} key's data does not hold a {kind} key (damaged when copied?)"
        ));
    }
    Ok(())
}

/// Key material published in this repository as an example (`profiles/example.yaml`): its
/// private half is nobody's, so a node with only this key lets nobody in.
const EXAMPLE_KEYS: &[&str] =
    &["AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E"];

/// A warning for a well-formed public key that cannot log in: the example key shipped with
/// pinode, or a placeholder whose key data ends in one byte repeated (`…AAAAAAAA`), which no
/// key generator produces. `None` for every other key (and for a malformed one, which
/// `ssh_public_key` refuses). Compares key material only, never the comment.
pub(crate) fn ssh_key_placeholder(key: &str) -> Option<String> {
    let blob = key.split_whitespace().nth(1)?;
    let fix = "put your own public key here (the line of ~/.ssh/id_ed25519.pub)";
    if EXAMPLE_KEYS.contains(&blob) {
        return Some(format!(
            "this key cannot log in: it is the example key published with pinode, whose \
             private key nobody has; {fix}"
        ));
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(blob)
        .ok()?;
    let tail = decoded.get(decoded.len().checked_sub(16)?..)?;
    tail.iter().all(|b| *b == tail[0]).then(|| {
        format!("this key cannot log in: its key data is a placeholder (one byte repeated); {fix}")
    })
}

/// A crypt(3) hash that chpasswd -e, userconf.txt and cloud-init accept.
pub(crate) fn password_hash(hash: &str) -> Result<(), String> {
    let scheme = ["$6$", "$5$", "$y$"]
        .into_iter()
        .find(|p| hash.starts_with(p));
    let Some(scheme) = scheme else {
        return Err(
            "not a supported password hash: use a $6$ (sha512-crypt), $5$ (sha256-crypt) \
                    or $y$ (yescrypt) hash, e.g. from `mkpasswd -m sha-512`, or password_env"
                .into(),
        );
    };
    let fields: Vec<&str> = hash.split('$').collect();
    let well_formed = fields.len() >= 4
        && fields.iter().skip(2).all(|f| !f.is_empty())
        && hash
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "./$=,".contains(c));
    if !well_formed {
        return Err(format!(
            "this {scheme} hash is malformed (expected {scheme}…$salt$hash with characters \
             a-z A-Z 0-9 . /); do not paste a plaintext password here"
        ));
    }
    Ok(())
}

/// The name of an environment variable.
pub fn env_var_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{} is not an environment variable name",
            quoted(name)
        ))
    }
}

/// Areas of canonical tz names. Old-style names (`US/Eastern`, `GB`, `Japan`) are links that
/// Debian 13 moved to the optional tzdata-legacy package, so a node might not have them.
const TZ_AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Europe",
    "Indian",
    "Pacific",
    "Etc",
];

/// An IANA time zone name known to the tz database, in its canonical Area/Location form.
pub fn timezone(zone: &str) -> Result<(), String> {
    let area = zone.split('/').next().unwrap_or("");
    let canonical = zone == "UTC" || (zone.contains('/') && TZ_AREAS.contains(&area));
    match zone.parse::<chrono_tz::Tz>() {
        Ok(_) if canonical => Ok(()),
        Ok(_) => Err(format!(
            "{} is an old-style alias that newer Raspberry Pi OS images may lack; use the \
             Area/Location name (e.g. America/New_York for US/Eastern, Europe/London for GB)",
            quoted(zone)
        )),
        Err(_) => Err(format!(
            "{} is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, Etc/UTC)",
            quoted(zone)
        )),
    }
}

/// A locale Debian can generate: a name of glibc's SUPPORTED list (`data/glibc/locales.txt`),
/// such as `en_GB.UTF-8` or `de_DE@euro`.
pub fn locale(name: &str) -> Result<(), String> {
    if locales::is_locale(name) {
        return Ok(());
    }
    let hint = match locales::suggestion(name) {
        Some(listed) => format!("; did you mean {listed}?"),
        None => " (e.g. en_GB.UTF-8, de_DE.UTF-8, C.UTF-8)".into(),
    };
    Err(format!(
        "{} is not a locale glibc supports{hint}",
        quoted(name)
    ))
}

/// `name` as glibc's list spells it: itself, or the same locale with its codeset written
/// another way (`LANG=en_US.utf8`, as hosts often set it, is listed as `en_US.UTF-8`).
pub(crate) fn listed_locale(name: &str) -> Option<String> {
    locales::respelt(name).map(str::to_string)
}

/// An XKB layout Debian ships (`data/xkb/layouts.txt`), such as `gb`, `us` or `de`.
pub fn keyboard(layout: &str) -> Result<(), String> {
    if keyboards::is_layout(layout) {
        return Ok(());
    }
    let hint = match keyboards::suggestion(layout) {
        Some(listed) => format!("; did you mean {listed}?"),
        None => " (e.g. gb, us, de, fr)".into(),
    };
    Err(format!(
        "{} is not an XKB keyboard layout{hint}",
        quoted(layout)
    ))
}

/// An ISO 3166 alpha-2 country code.
pub fn country(code: &str) -> Result<(), String> {
    if countries::is_country(code) {
        Ok(())
    } else if countries::is_country(&code.to_ascii_uppercase()) {
        Err(format!(
            "write the country code in capitals: {}",
            code.to_ascii_uppercase()
        ))
    } else if code == "UK" {
        Err("UK is not an ISO 3166 code; the United Kingdom is GB".into())
    } else {
        Err(format!(
            "{} is not an ISO 3166 alpha-2 country code (e.g. GB, DE, US)",
            quoted(code)
        ))
    }
}

/// An SSID: 1 to 32 bytes.
pub fn ssid(ssid: &str) -> Result<(), String> {
    if ssid.contains('\0') {
        return Err("the SSID must not contain a NUL character".into());
    }
    match ssid.len() {
        1..=32 => Ok(()),
        0 => Err("the SSID must not be empty".into()),
        n => Err(format!(
            "the SSID is {n} bytes long; Wi-Fi allows at most 32"
        )),
    }
}

/// A WPA2 passphrase (8 to 63 printable ASCII characters) or a raw 64-hex-digit PSK.
/// The message never contains the value.
pub fn wifi_passphrase(psk: &str) -> Result<(), String> {
    if psk.len() == 64 && psk.chars().all(|c| c.is_ascii_hexdigit()) {
        return Ok(());
    }
    if !psk.chars().all(|c| (' '..='~').contains(&c)) {
        return Err(
            "the Wi-Fi passphrase must be printable ASCII (WPA2 allows nothing else)".into(),
        );
    }
    match psk.len() {
        8..=63 => Ok(()),
        n => Err(format!(
            "the Wi-Fi passphrase is {n} characters long; WPA2 needs 8 to 63 (or a 64-digit hex key)"
        )),
    }
}

/// A DNS label used as the cluster name.
pub fn cluster_name(name: &str) -> Result<(), String> {
    hostname(name).map_err(|e| e.replacen("hostname", "cluster name", 2))
}

// Rules of the cluster stack (K3s) and the CI system (GitLab), with the messages
// `profile check` and the wizard both show. The K3s rules themselves are the engine's
// (`crate::engine::k3s`); the GitLab ones are `crate::ci::gitlab`'s (`gitlab_url`,
// `check_runner_token`).

/// A warning for a number of K3s servers that buys no safety: embedded etcd keeps working
/// only while a majority of the servers is up, so 2 servers survive no failure (as 1 does)
/// and 4 survive one (as 3 do). `profile check` and the wizard's server question show it.
pub fn server_count(servers: usize) -> Option<String> {
    (servers > 1 && servers.is_multiple_of(2)).then(|| {
        let fewer = servers - 1;
        format!(
            "{servers} servers: embedded etcd needs a majority ({} of {servers}) to keep \
             running, so an even count tolerates no more failures than {fewer} server{} \
             would; use an odd number",
            servers / 2 + 1,
            if fewer == 1 { "" } else { "s" }
        )
    })
}

/// A K3s release such as `v1.33.5+k3s1` or `v1.34.0-rc1+k3s1`.
pub(crate) fn k3s_version(version: &str) -> Result<(), String> {
    if k3s::is_version(version) {
        return Ok(());
    }
    let hint = if k3s::is_version(&format!("{version}+k3s1")) {
        format!("; K3s releases carry a build suffix: {version}+k3s1")
    } else if !version.starts_with('v') && k3s::is_version(&format!("v{version}")) {
        format!("; did you mean v{version}?")
    } else {
        String::new()
    };
    Err(format!(
        "{} is not a K3s version (vX.Y.Z+k3sN, e.g. v1.33.5+k3s1){hint}",
        quoted(version)
    ))
}

/// A K3s release channel K3s serves (`data/k3s/channels.txt`): `stable`, `latest`,
/// `testing` or a minor such as `v1.33`.
pub(crate) fn k3s_channel(channel: &str) -> Result<(), String> {
    if k3s::is_channel(channel) {
        return Ok(());
    }
    let ((first_major, first), (major, newest)) = k3s::channels::minor_range();
    let shown = quoted(channel);
    let with_v = format!("v{channel}");
    if k3s::is_channel(&with_v) {
        return Err(format!(
            "{shown} is not a K3s channel; minor channels start with 'v': {with_v}"
        ));
    }
    if k3s::channels::minor(channel).is_some_and(|m| m > (major, newest)) {
        return Err(format!(
            "{shown} is not a K3s channel pinode knows (its list ends at v{major}.{newest}); \
             for a newer release pin cluster.k3s.version instead, e.g. {channel}.0+k3s1"
        ));
    }
    let lower = channel.to_ascii_lowercase();
    if lower != channel && k3s::is_channel(&lower) {
        return Err(format!(
            "{shown} is not a K3s channel; write it in lower case: {lower}"
        ));
    }
    Err(format!(
        "{shown} is not a K3s channel: use stable, latest, testing or a minor from \
         v{first_major}.{first} to v{major}.{newest} (e.g. v1.33), or pin cluster.k3s.version"
    ))
}

fn abbreviate(value: &str) -> String {
    if value.chars().count() > 40 {
        format!("{}…", value.chars().take(40).collect::<String>())
    } else {
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E alice@laptop";

    #[test]
    fn dns_names() {
        assert!(dns_name("lab.example").is_ok());
        assert!(dns_name("lab.example.").is_ok());
        assert!(dns_name("-lab.example").is_err());
        assert!(dns_name("lab..example").is_err());
        assert!(dns_name("lab_x.example").is_err());
        assert!(
            dns_name(" lab.example").is_err(),
            "the caller trims, not this check"
        );
    }

    #[test]
    fn hostnames() {
        assert!(hostname("worker-1").is_ok());
        assert!(hostname("a").is_ok());
        assert!(hostname("my_host").unwrap_err().contains("underscores"));
        assert!(hostname("My").unwrap_err().contains("lower case"));
        assert!(hostname("bad host").is_err());
        assert!(hostname("-x").is_err());
        assert!(hostname(&"a".repeat(64)).is_err());
        assert!(hostname("x\ny").unwrap_err().contains("\\n"));
    }

    #[test]
    fn users() {
        assert!(user_name("alice").is_ok());
        assert!(user_name("root").unwrap_err().contains("system account"));
        assert!(user_name("video").is_err() && user_name("gpio").is_err());
        assert!(user_name("Alice").is_err());
        assert!(user_name("1x").is_err());
        assert!(user_name("a$(x)").is_err());
    }

    #[test]
    fn keys() {
        assert!(ssh_public_key(ED25519).is_ok());
        assert!(ssh_public_key("ssh-ed25519 AAAA").is_err());
        assert!(
            ssh_public_key("-----BEGIN OPENSSH PRIVATE KEY-----")
                .unwrap_err()
                .contains("PRIVATE")
        );
        assert!(ssh_public_key("hello world").is_err());
        let hidden = ssh_public_key_line("hunter2-secret-token-value").unwrap_err();
        assert!(!hidden.contains("hunter2"), "{hidden}");
        let hidden = ssh_public_key_line("hunter2 AAAA").unwrap_err();
        assert!(!hidden.contains("hunter2"), "{hidden}");
        assert!(
            ssh_public_key("ssh-dss AAAAB3NzaC1kc3MAAACBAP x")
                .unwrap_err()
                .contains("ed25519")
        );
        assert!(ssh_public_key(&format!("{ED25519}\nssh-rsa AAAA")).is_err());
        // An RSA blob presented as ed25519.
        let wrong = ED25519.replace("ssh-ed25519 ", "ssh-rsa ");
        assert!(ssh_public_key(&wrong).is_err());
    }

    #[test]
    fn placeholder_keys_are_flagged_real_ones_not() {
        assert!(
            ssh_key_placeholder(ED25519)
                .unwrap()
                .contains("cannot log in")
        );
        let zeros = format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{} x", "A".repeat(43));
        assert!(ssh_public_key(&zeros).is_ok());
        assert!(ssh_key_placeholder(&zeros).unwrap().contains("placeholder"));
        let real = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILXG6IZ3jSPmxJOq8ol1MHb0OI8XPEem3a1JdyW5eL+b bob@desk";
        assert_eq!(ssh_key_placeholder(real), None);
    }

    #[test]
    fn hashes() {
        assert!(password_hash("$6$rounds=5000$abcdefgh$Zx./09").is_ok());
        assert!(password_hash("$y$j9T$salt$hash").is_ok());
        assert!(password_hash("hunter2").is_err());
        assert!(password_hash("$6$salt$ha:sh").is_err());
        assert!(password_hash("$6$$").is_err());
    }

    #[test]
    fn zones_locales_keyboards_countries() {
        assert!(timezone("Europe/Berlin").is_ok() && timezone("Etc/UTC").is_ok());
        assert!(timezone("Mars/Olympus").is_err());
        assert!(
            timezone("US/Eastern")
                .unwrap_err()
                .contains("America/New_York")
        );
        assert!(timezone("GB").is_err() && timezone("UTC").is_ok());
        assert!(
            locale("en_GB.UTF-8").is_ok()
                && locale("de_DE@euro").is_ok()
                && locale("C.UTF-8").is_ok()
        );
        assert!(locale("english").is_err());
        assert!(
            locale("en_UK.UTF-8")
                .unwrap_err()
                .contains("did you mean en_GB.UTF-8?")
        );
        assert!(keyboard("gb").is_ok() && keyboard("G B").is_err());
        assert!(keyboard("uk").unwrap_err().contains("did you mean gb?"));
        assert_eq!(listed_locale("en_US.utf8").as_deref(), Some("en_US.UTF-8"));
        assert_eq!(listed_locale("de_DE@euro").as_deref(), Some("de_DE@euro"));
        assert_eq!(listed_locale("en_UK.UTF-8"), None);
        assert!(country("DE").is_ok() && country("XX").is_err());
        assert!(country("de").unwrap_err().contains("DE"));
    }

    #[test]
    fn k3s_and_gitlab_values() {
        assert!(k3s_version("v1.33.5+k3s1").is_ok() && k3s_version("1.33").is_err());
        assert!(k3s_channel("v1.33").is_ok() && k3s_channel("a b").is_err());
        assert!(k3s_channel("1.33").unwrap_err().contains("v1.33"));
        assert!(
            k3s_channel("v1.99")
                .unwrap_err()
                .contains("cluster.k3s.version")
        );
        assert!(k3s_channel("Stable").unwrap_err().contains("lower case"));
        assert!(k3s_version("v1.33.5").unwrap_err().contains("v1.33.5+k3s1"));
        assert!(
            k3s_version("1.33.5+k3s1")
                .unwrap_err()
                .contains("v1.33.5+k3s1?")
        );
        assert_eq!(crate::ci::gitlab::check_url("https://gitlab.com"), Ok(None));
        assert!(
            crate::ci::gitlab::check_url("http://gitlab.lan")
                .unwrap()
                .unwrap()
                .contains("plain http")
        );
        assert!(
            crate::ci::gitlab::check_url("https://").is_err()
                && crate::ci::gitlab::check_url("ftp://x").is_err()
        );
        assert!(crate::ci::gitlab::check_url("https://a b").is_err());
    }

    #[test]
    fn wifi_values() {
        assert!(ssid(&"x".repeat(32)).is_ok() && ssid(&"x".repeat(33)).is_err());
        assert!(ssid("é").is_ok());
        assert!(wifi_passphrase(&"p".repeat(63)).is_ok());
        assert!(wifi_passphrase(&"p".repeat(64)).is_err());
        assert!(
            wifi_passphrase(&"a".repeat(64)).is_ok(),
            "64 hex digits is a raw PSK"
        );
        assert!(wifi_passphrase("short").is_err());
        let err = wifi_passphrase("pässwörd1").unwrap_err();
        assert!(!err.contains("pässwörd1"));
    }

    #[test]
    fn an_even_server_count_is_warned_about() {
        for n in [0, 1, 3, 5, 9] {
            assert_eq!(server_count(n), None, "{n}");
        }
        assert_eq!(
            server_count(4).as_deref(),
            Some(
                "4 servers: embedded etcd needs a majority (3 of 4) to keep running, so an even \
                 count tolerates no more failures than 3 servers would; use an odd number"
            )
        );
        assert!(
            server_count(2).is_some_and(|w| w.contains("(2 of 2)") && w.contains("1 server would"))
        );
    }
}
