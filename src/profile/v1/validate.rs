//! Value checks over a parsed v1 profile. Each problem is recorded with the dotted path of
//! the field, which [`crate::profile::SpanIndex`] turns into a line and column.
//!
//! The version is not checked here: [`crate::profile`] reads it first and only a version 1
//! document reaches this module.

use super::schema::{BootSpec, ClusterSpec, NodeSettings, Profile, Role, UserSpec, WifiSpec};
use super::secrets;
use crate::engine::k3s::flags::{self as k3s_flags, Command};
use crate::engine::{Distribution, k3s};
use crate::profile::secret::Picked;
use crate::profile::values;

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub(crate) errors: Vec<(String, String)>,
    pub(crate) warnings: Vec<(String, String)>,
}

impl Report {
    pub(crate) fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push((field.into(), message.into()));
    }

    pub(crate) fn warn(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.warnings.push((field.into(), message.into()));
    }

    fn check(&mut self, field: String, result: Result<(), String>) {
        if let Err(message) = result {
            self.error(field, message);
        }
    }
}

pub(crate) fn profile(p: &Profile, r: &mut Report) {
    if p.os.image.trim().is_empty() {
        r.error(
            "os.image",
            "must name a catalog alias, an https:// URL or a local image path",
        );
    }
    if p.os.image.starts_with("http://") {
        r.error("os.image", "plain http:// is not accepted; use https://");
    }
    if let Some(sha) = &p.os.sha256
        && crate::digest::Sha256Hex::parse(sha).is_err()
    {
        r.error(
            "os.sha256",
            "must be 64 hex digits (the SHA-256 of the uncompressed image)",
        );
    }
    settings("defaults", &p.defaults, r);
    if p.nodes.is_empty() {
        r.error("nodes", "at least one node is needed");
    }
    for (i, node) in p.nodes.iter().enumerate() {
        settings(&format!("nodes[{i}]"), &node.settings(), r);
    }
    if let Some(cluster) = &p.cluster {
        cluster_spec(cluster, p, r);
        distribution_on_os(cluster, p, r);
    }
}

/// What the chosen distribution needs from the OS, as far as the profile tells without the
/// image (`prepare` checks the image itself, see `crate::engine::Engine::os_refusal`).
fn distribution_on_os(c: &ClusterSpec, p: &Profile, r: &mut Report) {
    if c.distribution != Distribution::Microk8s {
        return;
    }
    let image = p.os.image.as_str();
    let alias = !image.contains('/')
        && !image.contains("://")
        && ![".img", ".xz", ".gz", ".zst", ".zip"]
            .iter()
            .any(|ext| image.ends_with(ext))
        && crate::catalog::alias::Spec::parse(image).is_ok();
    if alias && !image.starts_with("ubuntu-") {
        r.error(
            "cluster.distribution",
            format!(
                "MicroK8s is installed as a snap, and os.image {} is Raspberry Pi OS, which \
                 ships no snapd: use Ubuntu Server (os.image: ubuntu-server-24.04-arm64)",
                crate::ui::quoted(image)
            ),
        );
    }
    if p.os.init.forced() == Some(crate::osinfo::InitRoute::Firstrun) {
        r.error(
            "os.init",
            "MicroK8s runs on Ubuntu Server, whose first boot is cloud-init only (it has no \
             Imager firstrun.sh): use os.init: cloud-init or auto",
        );
    }
}

fn settings(at: &str, s: &NodeSettings, r: &mut Report) {
    if let Some(user) = &s.user {
        user_spec(&format!("{at}.user"), user, r);
    }
    if let Some(Some(wifi)) = &s.wifi {
        wifi_spec(&format!("{at}.wifi"), wifi, r);
    }
    if let Some(tz) = &s.timezone {
        r.check(format!("{at}.timezone"), values::timezone(tz));
    }
    if let Some(locale) = &s.locale {
        r.check(format!("{at}.locale"), values::locale(locale));
    }
    if let Some(kb) = &s.keyboard {
        r.check(format!("{at}.keyboard"), values::keyboard(kb));
    }
    if let Some(boot) = &s.boot {
        boot_spec(&format!("{at}.boot"), boot, r);
    }
}

fn user_spec(at: &str, u: &UserSpec, r: &mut Report) {
    if let Some(name) = &u.name {
        r.check(format!("{at}.name"), values::user_name(name));
    }
    for (i, key) in u.ssh_authorized_keys.iter().flatten().enumerate() {
        let field = format!("{at}.ssh_authorized_keys[{i}]");
        match values::ssh_public_key(key) {
            Ok(()) => {
                if let Some(warning) = values::ssh_key_placeholder(key) {
                    r.warn(field, warning);
                }
            }
            Err(message) => r.error(field, message),
        }
    }
    if let Some(file) = &u.ssh_authorized_keys_file
        && file.trim().is_empty()
    {
        r.error(format!("{at}.ssh_authorized_keys_file"), "must be a path");
    }
    if let Some(hash) = &u.password_hash {
        r.check(format!("{at}.password_hash"), values::password_hash(hash));
    }
    if let Some(var) = &u.password_env {
        r.check(format!("{at}.password_env"), values::env_var_name(var));
    }
    if u.password_hash.is_some() && u.password_env.is_some() {
        r.error(
            format!("{at}.password_env"),
            "give password_hash or password_env, not both",
        );
    }
}

fn wifi_spec(at: &str, w: &WifiSpec, r: &mut Report) {
    r.check(format!("{at}.ssid"), values::ssid(&w.ssid));
    r.check(format!("{at}.country"), values::country(&w.country));
    match secrets::wifi_psk(at, w) {
        Picked::Missing => r.error(
            format!("{at}.psk_env"),
            "the Wi-Fi passphrase is missing: give psk_env (an environment variable), psk_file or psk",
        ),
        Picked::One(_) => {}
        Picked::Several(message) => r.error(format!("{at}.psk"), message),
    }
    if let Some(psk) = &w.psk {
        r.check(format!("{at}.psk"), values::wifi_passphrase(psk));
        r.warn(
            format!("{at}.psk"),
            "the Wi-Fi passphrase is written in the profile; prefer psk_env or psk_file so the \
             profile can be shared and committed",
        );
    }
    if let Some(var) = &w.psk_env {
        r.check(format!("{at}.psk_env"), values::env_var_name(var));
    }
}

/// Tokens the first-boot machinery owns; a user token with these keys would break it.
const RESERVED_CMDLINE_KEYS: &[&str] = &[
    "init",
    "systemd.run",
    "systemd.run_success_action",
    "systemd.unit",
    "ds",
    "root",
];

fn boot_spec(at: &str, b: &BootSpec, r: &mut Report) {
    for (i, token) in b.cmdline_extra.iter().flatten().enumerate() {
        let field = format!("{at}.cmdline_extra[{i}]");
        if token.contains('"') {
            r.error(
                field,
                "quotes are not allowed: an unbalanced quote would swallow the tokens after it",
            );
        } else if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
            r.error(
                field,
                format!(
                    "{} is not one kernel command-line token (no spaces or line breaks)",
                    crate::ui::quoted(token)
                ),
            );
        } else if RESERVED_CMDLINE_KEYS
            .iter()
            .any(|k| token.split('=').next() == Some(k))
        {
            r.error(
                field,
                format!(
                    "{} is managed by pinode or the image and cannot be set here",
                    crate::ui::quoted(token)
                ),
            );
        }
    }
    for (i, line) in b.config_extra.iter().flatten().enumerate() {
        let field = format!("{at}.config_extra[{i}]");
        let trimmed = line.trim();
        if line
            .chars()
            .any(|c| c == '\n' || c == '\r' || (c.is_control() && c != '\t'))
        {
            r.error(field, "one config.txt line per entry (no line breaks)");
        } else if trimmed.starts_with('[') {
            r.error(
                field,
                "section headers are not allowed: config_extra lines always go under [all]",
            );
        } else if trimmed.starts_with("# BEGIN pinode") || trimmed == "# END pinode" {
            r.error(field, "this line is pinode's own block marker");
        }
    }
}

/// `cluster.airgap`: K3s only for now, a pinned release (a channel names a release only
/// through update.k3s.io, which the node cannot reach and which would make the cached files
/// change under the profile), and an https release URL.
fn airgap(c: &ClusterSpec, r: &mut Report) {
    let k3s = c.k3s();
    if !(k3s.release_url.starts_with("https://")
        && k3s.release_url.len() > "https://".len()
        && !k3s.release_url.contains(char::is_whitespace))
    {
        r.error(
            "cluster.k3s.release_url",
            "must be an https:// URL, e.g. https://github.com/k3s-io/k3s/releases/download",
        );
    }
    if !c.airgap {
        return;
    }
    if c.distribution != Distribution::K3s {
        r.error(
            "cluster.airgap",
            format!(
                "a first boot without internet is only available for K3s for now; remove \
                 cluster.airgap or use distribution: k3s (this cluster uses {})",
                c.distribution.title()
            ),
        );
        return;
    }
    if k3s.version.is_none() {
        r.error(
            "cluster.airgap",
            "needs a pinned release: set cluster.k3s.version (e.g. v1.33.5+k3s1); a channel \
             cannot be resolved without internet, and the files on the card must be those of \
             one release",
        );
    }
}

/// The chosen distribution's settings by its rules; another distribution's key is refused
/// (it would be ignored, and its author meant something by it).
fn distribution_keys(c: &ClusterSpec, r: &mut Report) {
    let chosen = c.distribution;
    let given = [
        (Distribution::K3s, c.k3s.is_some()),
        (Distribution::Microk8s, c.microk8s.is_some()),
        (Distribution::Kubeadm, c.kubeadm.is_some()),
    ];
    for (distribution, present) in given {
        if present && distribution != chosen {
            r.error(
                format!("cluster.{distribution}"),
                format!(
                    "settings for {} but cluster.distribution is {chosen}: set \
                     `distribution: {distribution}` or remove this key",
                    distribution.title()
                ),
            );
        }
    }
    let problems = match chosen {
        Distribution::K3s => Vec::new(),
        Distribution::Microk8s => c.microk8s().problems(),
        Distribution::Kubeadm => c.kubeadm().problems(),
    };
    for problem in problems {
        let field = format!("cluster.{chosen}.{}", problem.field);
        if problem.warning {
            r.warn(field, problem.message);
        } else {
            r.error(field, problem.message);
        }
    }
}

fn cluster_spec(c: &ClusterSpec, p: &Profile, r: &mut Report) {
    r.check("cluster.name".into(), values::cluster_name(&c.name));
    if let Picked::Several(message) = secrets::cluster_token(c) {
        r.error("cluster.token_file", message);
    }
    if let Some(var) = &c.token_env {
        r.check("cluster.token_env".into(), values::env_var_name(var));
    }
    if let Some(api) = &c.api
        && !(api.starts_with("https://")
            && api.len() > "https://".len()
            && !api.contains(char::is_whitespace))
    {
        r.error(
            "cluster.api",
            "must be an https:// URL, e.g. https://matrix.local:6443",
        );
    }
    distribution_keys(c, r);
    let k3s = c.k3s();
    if let Some(v) = &k3s.version {
        r.check("cluster.k3s.version".into(), values::k3s_version(v));
    }
    r.check(
        "cluster.k3s.channel".into(),
        values::k3s_channel(&k3s.channel),
    );
    if !k3s.install_url.starts_with("https://") {
        r.error("cluster.k3s.install_url", "must be an https:// URL");
    }
    airgap(c, r);
    // Every argument is checked against the flags of the K3s command that reads it; all
    // problems are reported, each at its own list item.
    for (name, args, command) in [
        ("server_args", &k3s.server_args, Command::Server),
        ("agent_args", &k3s.agent_args, Command::Agent),
    ] {
        let mut single_line = true;
        for (i, arg) in args.iter().enumerate() {
            if arg.chars().any(|ch| ch.is_control()) {
                r.error(format!("cluster.k3s.{name}[{i}]"), "must be a single line");
                single_line = false;
            }
        }
        if !single_line {
            continue;
        }
        if let Err(errors) = k3s_flags::parse_args(args, command, k3s::MANAGED_FLAGS) {
            for e in errors {
                r.error(format!("cluster.k3s.{name}[{}]", e.index), e.message);
            }
        }
    }
    // The flag list is for one K3s version line; say so when the profile pins another.
    let pinned = k3s
        .version
        .as_deref()
        .map(|v| ("cluster.k3s.version", v))
        .unwrap_or(("cluster.k3s.channel", k3s.channel.as_str()));
    if !(k3s.server_args.is_empty() && k3s.agent_args.is_empty())
        && let Ok(set) = k3s_flags::flags()
        && let Some(line) = set.other_line(pinned.1)
    {
        r.warn(
            pinned.0,
            format!(
                "server_args and agent_args are checked against the flags of K3s {} \
                 (data/k3s/flags.txt); {line} may differ",
                set.line
            ),
        );
    }
    for (i, san) in k3s.tls_san.iter().enumerate() {
        let ok = !san.is_empty()
            && san
                .chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ".-:".contains(ch));
        if !ok {
            r.error(
                format!("cluster.k3s.tls_san[{i}]"),
                format!(
                    "{} is not a host name or IP address",
                    crate::ui::quoted(san)
                ),
            );
        }
    }
    if let Some(kube_vip) = &c.kube_vip {
        if c.vip.is_none() {
            r.error(
                "cluster.kube_vip",
                "kube-vip announces cluster.vip: give the VIP, or remove kube_vip",
            );
        }
        if let Some(interface) = &kube_vip.interface {
            r.check(
                "cluster.kube_vip.interface".into(),
                crate::engine::k3s::kubevip::check_interface(interface),
            );
        }
    }
    if let Some(runners) = &c.runner {
        let storage = crate::ci::ClusterStorage {
            distribution: c.distribution,
            hostpath_addon: c.distribution == crate::engine::Distribution::Microk8s
                && c.microk8s().addons.iter().any(|a| a == "hostpath-storage"),
        };
        for problem in crate::ci::check(runners, storage) {
            if problem.warning {
                r.warn(&problem.field, problem.message);
            } else {
                r.error(&problem.field, problem.message);
            }
        }
        for (at, runner) in runners.entries() {
            for slot in crate::ci::secrets_of(runner) {
                let stem = slot.stem();
                match secrets::runner_secret(&at, runner, slot) {
                    Picked::Missing => r.error(
                        format!("{at}.{stem}_env"),
                        format!(
                            "the {} runner needs its {}: give {stem}_env or {stem}_file",
                            runner.kind().as_str(),
                            stem.replace('_', " ")
                        ),
                    ),
                    Picked::Several(message) => r.error(format!("{at}.{stem}_file"), message),
                    Picked::One(_) => {
                        if let Some(var) = runner.secret_env(slot) {
                            r.check(format!("{at}.{stem}_env"), values::env_var_name(var));
                        }
                    }
                }
            }
        }
        // Where the runners' charts come from (`chart_repo`).
        for problem in crate::ci::chart_source::check(runners) {
            r.error(&problem.field, problem.message);
        }
    }
    if let Some(mirror) = &c.registry_mirror {
        r.check(
            "cluster.registry_mirror".into(),
            crate::engine::registry_mirror::check(mirror, c.distribution),
        );
    }
    let servers = p
        .nodes
        .iter()
        .filter(|n| n.role == Some(Role::Server))
        .count();
    if servers == 0 {
        r.error(
            "nodes",
            "the cluster needs a server: give one node `role: server`",
        );
    }
}
