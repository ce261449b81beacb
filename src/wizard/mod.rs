//! The wizard's answers, and the profile they become.
//!
//! The questions themselves live with the command (`pinode wizard`); this module turns the
//! answers into a commented profile that `pinode profile check` accepts, and saves it with its
//! secret files. Secrets never go into the profile: a password becomes a crypt hash, a Wi-Fi
//! passphrase or runner token goes to a mode-0600 file next to the profile, or stays in an
//! environment variable the profile names.

pub mod host;
pub mod save;
mod yaml;

use secrecy::SecretString;

use crate::profile::schema::{
    ClusterSpec, InitChoice, K3sSpec, NodeEntry, NodeSettings, OsSpec, Profile, Role, RunnerSpec,
    SshSpec, SudoMode, UserSpec, WifiSpec,
};
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
    /// `v1.33.5+k3s1` is a version (so is anything with a `+` or a patch number, to be told
    /// what it lacks); `stable`, `latest`, `v1.33` are channels. Each is checked by the rule
    /// `profile check` applies to `cluster.k3s.version` / `channel`, with its message.
    pub fn parse(text: &str) -> Result<K3sRelease, String> {
        let text = text.trim();
        if text.contains('+') || text.matches('.').count() >= 2 {
            return values::k3s_version(text).map(|()| K3sRelease::Version(text.to_string()));
        }
        values::k3s_channel(text).map(|()| K3sRelease::Channel(text.to_string()))
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

/// The header the saved profile opens with.
const HEADER: &str = "# A pinode profile, written by `pinode wizard`.
# Check it:        pinode profile check THIS-FILE
# Flash cards:     sudo pinode flash --profile THIS-FILE
# Image files:     pinode prepare --profile THIS-FILE --out-dir images
# The format: README.md, \"The profile\"; `pinode profile schema` prints its JSON Schema.
";

/// `(env, file)`: the profile keys a secret's answer fills.
fn secret_keys(secret: &Secret) -> (Option<String>, Option<String>) {
    match secret {
        Secret::File { file, .. } => (None, Some(file.clone())),
        Secret::Env(var) => (Some(var.clone()), None),
    }
}

/// A GitLab runner for `url` with every other setting at the profile's default: read
/// through serde, so that the defaults have one source (the schema's).
fn gitlab_runner(url: &str) -> Result<RunnerSpec, yaml::Error> {
    serde_json::from_value(serde_json::json!({ "kind": "gitlab", "url": url }))
        .map_err(serde::ser::Error::custom)
}

/// The answers as a profile, in the profile's own (v1) types.
fn to_profile(a: &Answers) -> Result<Profile, yaml::Error> {
    let wifi = a.wifi.as_ref().map(|w| {
        let (psk_env, psk_file) = secret_keys(&w.psk);
        WifiSpec {
            ssid: w.ssid.clone(),
            psk: None,
            psk_env,
            psk_file,
            country: w.country.clone(),
            hidden: false,
        }
    });
    let runner = match &a.runner {
        None => None,
        Some(r) => {
            let (token_env, token_file) = secret_keys(&r.token);
            Some(RunnerSpec {
                token_env,
                token_file,
                ..gitlab_runner(&r.url)?
            })
        }
    };
    let (version, channel) = match &a.k3s {
        K3sRelease::Channel(c) => (None, c.clone()),
        K3sRelease::Version(v) => (Some(v.clone()), K3sSpec::default().channel),
    };
    let node = |hostname: &String, role| NodeEntry {
        hostname: hostname.clone(),
        role: Some(role),
        ..NodeEntry::default()
    };
    Ok(Profile {
        version: 1,
        os: OsSpec {
            image: a.os_image.clone(),
            sha256: None,
            init: InitChoice::Auto,
        },
        defaults: NodeSettings {
            user: Some(UserSpec {
                name: Some(a.user.clone()),
                ssh_authorized_keys: (!a.ssh_keys.is_empty()).then(|| a.ssh_keys.clone()),
                ssh_authorized_keys_file: None,
                password_hash: a.password_hash.clone(),
                password_env: None,
                sudo: Some(SudoMode::Nopasswd),
            }),
            ssh: Some(SshSpec {
                enabled: Some(true),
                password_authentication: None,
            }),
            wifi: Some(wifi),
            timezone: Some(a.timezone.clone()),
            locale: Some(a.locale.clone()),
            keyboard: Some(a.keyboard.clone()),
            boot: None,
            network: None,
            storage: None,
        },
        cluster: Some(ClusterSpec {
            name: a.cluster_name.clone(),
            token_env: None,
            token_file: None,
            api: None,
            vip: None,
            kube_vip: None,
            registry_mirror: None,
            distribution: Default::default(),
            k3s: Some(K3sSpec {
                version,
                channel,
                ..K3sSpec::default()
            }),
            microk8s: None,
            kubeadm: None,
            runner: runner.map(crate::ci::Runners::one),
            airgap: false,
        }),
        nodes: std::iter::once(node(&a.servers, Role::Server))
            .chain(a.agents.iter().map(|agents| node(agents, Role::Agent)))
            .collect(),
    })
}

/// What the saved profile says beside its values.
fn comments(a: &Answers) -> yaml::Comments {
    let mut c = yaml::Comments::default();
    let mut trail = |path: &str, text: &str| {
        c.trailing.insert(path.to_string(), text.to_string());
    };
    trail(
        "os.image",
        "a catalog alias (pinode os list) or an image file",
    );
    trail(
        "os.init",
        "firstrun (Bullseye, Bookworm) or cloud-init (Trixie), from the image",
    );
    trail(
        "defaults.user.password_hash",
        "sha512-crypt; the password itself is not kept",
    );
    if a.wifi.is_none() {
        trail("defaults.wifi", "wired network");
    }
    for (at, what) in [
        ("defaults.wifi.psk", "the passphrase"),
        ("cluster.runner.token", "the glrt- token"),
    ] {
        trail(
            &format!("{at}_file"),
            &format!("{what}: mode 0600, next to this profile"),
        );
        trail(
            &format!("{at}_env"),
            &format!("{what}: export it before flash or prepare"),
        );
    }
    trail("nodes[0].hostname", "the first server founds the cluster");
    c.before.insert(
        "cluster.k3s".into(),
        vec![
            "The join token: generated on first use and kept (0600) in pinode's state directory;"
                .into(),
            "set token_env or token_file to bring your own.".into(),
        ],
    );
    // Defaults the wizard does not spell out.
    c.omit = [
        "defaults.wifi.hidden",
        "cluster.k3s.install_url",
        "cluster.runner.concurrent",
        "cluster.runner.default_image",
    ]
    .map(String::from)
    .to_vec();
    if matches!(a.k3s, K3sRelease::Version(_)) {
        c.omit.push("cluster.k3s.channel".into());
    }
    // Said out loud: no Wi-Fi, no runner.
    c.keep_null = vec!["defaults.wifi".into(), "cluster.runner".into()];
    c
}

/// The profile, as commented YAML: `to_profile` written by `yaml`.
pub fn render_profile(a: &Answers) -> Result<String, yaml::Error> {
    Ok(format!(
        "{HEADER}{}",
        yaml::to_string(&to_profile(a)?, &comments(a))?
    ))
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
        let text = render_profile(&answers()).unwrap();
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
