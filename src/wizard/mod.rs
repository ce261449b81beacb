//! The wizard's answers, and the profile they become.
//!
//! The questions themselves live with the command (`pinode wizard`); this module turns the
//! answers into a commented profile that `pinode profile check` accepts, and saves it with its
//! secret files. Secrets never go into the profile: a password becomes a crypt hash, a Wi-Fi
//! passphrase or runner token goes to a mode-0600 file next to the profile, or stays in an
//! environment variable the profile names.

pub mod host;
pub mod save;

use secrecy::SecretString;

use crate::profile::values;

/// Where a secret the wizard was given ends up.
pub enum Secret {
    /// Written to `file` (a name next to the profile), mode 0600.
    File { file: String, value: SecretString },
    /// Read from this environment variable when flashing or preparing.
    Env(String),
}

pub struct WifiAnswers {
    pub ssid: String,
    pub psk: Secret,
    pub country: String,
}

pub struct RunnerAnswers {
    pub url: String,
    pub token: Secret,
}

/// K3s: a release channel or an exact version.
pub enum K3sRelease {
    Channel(String),
    Version(String),
}

impl K3sRelease {
    /// `v1.33.5+k3s1` is a version; `stable`, `latest`, `v1.33` are channels. Each is checked
    /// by the rule `profile check` applies to `cluster.k3s.version` / `channel`.
    pub fn parse(text: &str) -> Result<K3sRelease, String> {
        let text = text.trim();
        if text.contains("+k3s") {
            return values::k3s_version(text).map(|()| K3sRelease::Version(text.to_string()));
        }
        values::k3s_channel(text)
            .map(|()| K3sRelease::Channel(text.to_string()))
            .map_err(|_| "a channel (stable, latest, v1.33) or a version (v1.33.5+k3s1)".into())
    }
}

pub struct Answers {
    /// A catalog alias or a local image path.
    pub os_image: String,
    pub cluster_name: String,
    /// Hostname pattern of the servers (`cp`, `cp-[1-3]`).
    pub servers: String,
    /// Hostname pattern of the agents, if any.
    pub agents: Option<String>,
    pub k3s: K3sRelease,
    pub user: String,
    pub ssh_keys: Vec<String>,
    pub password_hash: Option<String>,
    pub wifi: Option<WifiAnswers>,
    pub timezone: String,
    pub locale: String,
    pub keyboard: String,
    pub runner: Option<RunnerAnswers>,
}

/// A YAML scalar that reads back as exactly `value`: a JSON string is a valid YAML
/// double-quoted scalar, and never turns into a number, a boolean or null.
pub fn quoted(value: &str) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "\"\"".into())
}

fn secret_lines(out: &mut String, indent: &str, key: &str, secret: &Secret, what: &str) {
    match secret {
        Secret::File { file, .. } => out.push_str(&format!(
            "{indent}{key}_file: {}   # {what}: mode 0600, next to this profile\n",
            quoted(file)
        )),
        Secret::Env(var) => out.push_str(&format!(
            "{indent}{key}_env: {}   # {what}: export it before flash or prepare\n",
            quoted(var)
        )),
    }
}

/// The profile, as commented YAML.
pub fn render_profile(a: &Answers) -> String {
    let mut y = String::new();
    y.push_str(
        "# A pinode profile, written by `pinode wizard`.\n\
         # Check it:        pinode profile check THIS-FILE\n\
         # Flash cards:     sudo pinode flash --profile THIS-FILE\n\
         # Image files:     pinode prepare --profile THIS-FILE --out-dir images\n\
         # The format: README.md, \"The profile\"; `pinode profile schema` prints its JSON Schema.\n\
         version: 1\n\n",
    );
    y.push_str("os:\n");
    y.push_str(&format!(
        "  image: {}   # a catalog alias (pinode os list) or an image file\n",
        quoted(&a.os_image)
    ));
    y.push_str(
        "  init: auto   # firstrun (Bullseye, Bookworm) or cloud-init (Trixie), from the image\n\n",
    );

    y.push_str("defaults:\n  user:\n");
    y.push_str(&format!("    name: {}\n", quoted(&a.user)));
    if !a.ssh_keys.is_empty() {
        y.push_str("    ssh_authorized_keys:\n");
        for key in &a.ssh_keys {
            y.push_str(&format!("      - {}\n", quoted(key)));
        }
    }
    if let Some(hash) = &a.password_hash {
        y.push_str(&format!(
            "    password_hash: {}   # sha512-crypt; the password itself is not kept\n",
            quoted(hash)
        ));
    }
    y.push_str("    sudo: nopasswd\n");
    y.push_str("  ssh:\n    enabled: true\n");
    match &a.wifi {
        Some(w) => {
            y.push_str("  wifi:\n");
            y.push_str(&format!("    ssid: {}\n", quoted(&w.ssid)));
            secret_lines(&mut y, "    ", "psk", &w.psk, "the passphrase");
            y.push_str(&format!("    country: {}\n", quoted(&w.country)));
        }
        None => y.push_str("  wifi: null   # wired network\n"),
    }
    y.push_str(&format!("  timezone: {}\n", quoted(&a.timezone)));
    y.push_str(&format!("  locale: {}\n", quoted(&a.locale)));
    y.push_str(&format!("  keyboard: {}\n\n", quoted(&a.keyboard)));

    y.push_str("cluster:\n");
    y.push_str(&format!("  name: {}\n", quoted(&a.cluster_name)));
    y.push_str(
        "  # The join token: generated on first use and kept (0600) in pinode's state directory;\n\
         \x20 # set token_env or token_file to bring your own.\n",
    );
    y.push_str("  k3s:\n");
    match &a.k3s {
        K3sRelease::Channel(c) => y.push_str(&format!("    channel: {}\n", quoted(c))),
        K3sRelease::Version(v) => y.push_str(&format!("    version: {}\n", quoted(v))),
    }
    match &a.runner {
        Some(r) => {
            y.push_str("  runner:\n    kind: gitlab\n");
            y.push_str(&format!("    url: {}\n", quoted(&r.url)));
            secret_lines(&mut y, "    ", "token", &r.token, "the glrt- token");
        }
        None => y.push_str("  runner: null\n"),
    }
    y.push_str("\nnodes:\n");
    y.push_str(&format!(
        "  - hostname: {}   # the first server founds the cluster\n    role: server\n",
        quoted(&a.servers)
    ));
    if let Some(agents) = &a.agents {
        y.push_str(&format!(
            "  - hostname: {}\n    role: agent\n",
            quoted(agents)
        ));
    }
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answers() -> Answers {
        Answers {
            os_image: "/images/pi os: \"lite\".img".into(),
            cluster_name: "lab".into(),
            servers: "cp-[1-3]".into(),
            agents: None,
            k3s: K3sRelease::Channel("latest".into()),
            user: "alice".into(),
            ssh_keys: vec![],
            password_hash: Some("$6$salt$hash".into()),
            wifi: Some(WifiAnswers {
                ssid: "no".into(),
                psk: Secret::Env("LAB_PSK".into()),
                country: "NO".into(),
            }),
            timezone: "Europe/Oslo".into(),
            locale: "nb_NO.UTF-8".into(),
            keyboard: "no".into(),
            runner: Some(RunnerAnswers {
                url: "https://gitlab.example.com".into(),
                token: Secret::Env("LAB_RUNNER".into()),
            }),
        }
    }

    #[test]
    fn environment_references_and_yaml_lookalikes_survive_a_round_trip() {
        let text = render_profile(&answers());
        let loaded = crate::profile::LoadedProfile::parse(std::path::Path::new("lab.yaml"), &text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let p = &loaded.profile;
        assert_eq!(p.os.image, "/images/pi os: \"lite\".img");
        let wifi = serde_json::to_value(&p.defaults.wifi).unwrap();
        assert_eq!(wifi["ssid"], "no", "the SSID `no` stays a string");
        assert_eq!(wifi["psk_env"], "LAB_PSK");
        assert_eq!(wifi["country"], "NO");
        assert!(text.contains("token_env: \"LAB_RUNNER\""));
        assert_eq!(loaded.nodes.len(), 3);
    }

    #[test]
    fn a_profile_holding_a_password_hash_is_saved_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let mut a = answers();
        a.os_image = "raspios-lite-arm64".into();
        a.ssh_keys = vec![
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E a@b"
                .into(),
        ];
        a.password_hash = Some(crate::plan::password::sha512_crypt("pw").unwrap());
        let saved = save::save(&a, &dir.path().join("hash.yaml")).unwrap();
        assert_eq!(mode(&saved.profile), 0o600);
        a.password_hash = None;
        let saved = save::save(&a, &dir.path().join("keys.yaml")).unwrap();
        assert_eq!(mode(&saved.profile), 0o644);
    }

    #[test]
    fn k3s_release_is_a_channel_or_a_version() {
        assert!(matches!(
            K3sRelease::parse("stable"),
            Ok(K3sRelease::Channel(_))
        ));
        assert!(matches!(
            K3sRelease::parse("v1.33"),
            Ok(K3sRelease::Channel(_))
        ));
        assert!(matches!(
            K3sRelease::parse("v1.33.5+k3s1"),
            Ok(K3sRelease::Version(_))
        ));
        assert!(K3sRelease::parse("1.33+k3s1").is_err());
        assert!(K3sRelease::parse("stable channel").is_err());
        assert!(K3sRelease::parse("").is_err());
    }
}
