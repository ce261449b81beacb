//! `cluster.registry_mirror`: one registry mirror every node pulls container images through.
//!
//! `cluster.airgap` puts the distribution and the runners' charts on the card, but the
//! runners' container images (and the cluster's own) still come from a registry at first
//! boot. A mirror on the local network (a pull-through cache) is how a cluster without
//! internet gets them.
//!
//! K3s: `/etc/rancher/k3s/registries.yaml`, read by K3s when it starts (so it is placed before
//! K3s is installed), from the K3s documentation's "Private Registry Configuration"
//! (docs.k3s.io/installation/private-registry; k3s-io/docs
//! `docs/installation/private-registry.md`): `mirrors.<REGISTRY>.endpoint` lists the URLs
//! containerd tries, then the registry's own ("default endpoint fallback"); an `http://`
//! endpoint is used without TLS. The mirror is named for the registries runner and
//! distribution images come from (docker.io, ghcr.io, quay.io, registry.k8s.io), which every
//! K3s release understands, and for `"*"`, which K3s understands from v1.26.15+k3s1,
//! v1.27.12+k3s1, v1.28.8+k3s1 and v1.29.3+k3s1 on (the March 2024 releases; "the asterisk
//! MUST be quoted") and an older one ignores as an unknown registry name.
//!
//! kubeadm (CRI-O): a drop-in `/etc/containers/registries.conf.d/50-pinode-mirror.conf`,
//! placed before CRI-O is installed, in the version-2 format of containers-registries.conf(5)
//! (containers/image `docs/containers-registries.conf.5.md`; drop-ins must be version 2,
//! containers-registries.conf.d(5)): one `[[registry]]` per named registry (`prefix` =
//! `location` = the registry) with one `[[registry.mirror]]` whose `location` is the
//! mirror's `host[:port][/path]` (no scheme) and `insecure = true` for an `http://` mirror
//! ("unencrypted HTTP ... allowed"). The mirrors are tried first, then the registry itself.
//! This format has no wildcard: only the named registries go through the mirror.
//!
//! MicroK8s: the launch configuration's `containerdRegistryConfigs` (registry name → the
//! contents of its containerd `hosts.toml`; canonical/microk8s-cluster-agent
//! `pkg/k8sinit/schema.go`, file format 0.1.0, MicroK8s 1.27 and later), which the snap's
//! install hook writes to `$SNAP_DATA/args/certs.d/<registry>/hosts.toml` before containerd
//! starts. Each file names the registry's own `server` and the mirror as a `[host."URL"]`
//! with `capabilities = ["pull", "resolve"]` (containerd/containerd `docs/hosts.md`: hosts
//! are tried in order, then the server). No wildcard (containerd's `_default` directory is
//! not something the launch configuration documents): the named registries only.
//!
//! Mirrors are not secret, and must stay so: the file is world-readable on the FAT until the
//! first boot moves it. A URL with a user name or password is refused; credentials belong in
//! registries.yaml's `configs.<mirror>.auth`, written from a secret file (not supported yet).

use serde_json::{Value, json};

use crate::bootfs::content::BootFile;
use crate::engine::Distribution;
use crate::engine::stage2::{StageContext, fill};

/// The registries named explicitly: those of the images K3s and pinode's runners use.
pub(crate) const REGISTRIES: [&str; 4] = ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"];
/// Where K3s reads it.
pub(crate) const K3S_PATH: &str = "/etc/rancher/k3s/registries.yaml";
/// Its name on the boot partition (in the stage's directory) and in the node's directory.
const FILE: &str = "k3s-registries.yaml";

/// The mirror URL's rules: http(s), a host, no credentials, query or fragment.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| format!("not a URL ({e}): give https://HOST[:PORT]"))?;
    if !matches!(parsed.scheme(), "https" | "http") {
        return Err("must be an https:// (or http://) URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "carries a user name or password: the mirror's URL is written in the \
                    clear on the boot partition; use a mirror that needs no login (registry \
                    credentials through registries.yaml's auth are not supported yet)"
                .into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(())
}

/// The problems of `cluster.registry_mirror` (every distribution takes it).
pub(crate) fn check(url: &str, _distribution: Distribution) -> Result<(), String> {
    check_url(url)
}

/// The registry's own endpoint, containerd's `server` (Docker Hub's is
/// registry-1.docker.io, as in containerd's docs/hosts.md example).
fn server_of(registry: &str) -> String {
    match registry {
        "docker.io" => "https://registry-1.docker.io".to_string(),
        other => format!("https://{other}"),
    }
}

/// MicroK8s' `containerdRegistryConfigs`: each named registry's `hosts.toml`, through
/// `mirror` first. TOML strings written by the `toml` crate (quoted and escaped).
pub(crate) fn containerd_hosts(mirror: &str) -> Result<Vec<(&'static str, String)>, String> {
    #[derive(serde::Serialize)]
    struct Host {
        capabilities: [&'static str; 2],
    }
    #[derive(serde::Serialize)]
    struct HostsToml {
        server: String,
        host: std::collections::BTreeMap<String, Host>,
    }
    REGISTRIES
        .iter()
        .map(|registry| {
            let doc = HostsToml {
                server: server_of(registry),
                host: [(
                    mirror.trim_end_matches('/').to_string(),
                    Host {
                        capabilities: ["pull", "resolve"],
                    },
                )]
                .into(),
            };
            toml::to_string(&doc)
                .map(|text| (*registry, text))
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// Where CRI-O (containers/image) reads the drop-in.
pub(crate) const CRIO_PATH: &str = "/etc/containers/registries.conf.d/50-pinode-mirror.conf";
/// Its name on the boot partition and in the node's directory.
const CRIO_FILE: &str = "crio-registries.conf";

#[derive(serde::Serialize)]
struct CrioConf {
    registry: Vec<CrioRegistry>,
}

#[derive(serde::Serialize)]
struct CrioRegistry {
    prefix: String,
    location: String,
    mirror: Vec<CrioMirror>,
}

#[derive(serde::Serialize)]
struct CrioMirror {
    location: String,
    insecure: bool,
}

/// The CRI-O drop-in for `mirror` (checked by [`check_url`]).
pub(crate) fn crio_registries_conf(mirror: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(mirror).map_err(|e| e.to_string())?;
    let host = url.host_str().ok_or("no host")?;
    let mut location = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_string(),
    };
    let path = url.path().trim_end_matches('/');
    location.push_str(path);
    let conf = CrioConf {
        registry: REGISTRIES
            .iter()
            .map(|registry| CrioRegistry {
                prefix: registry.to_string(),
                location: registry.to_string(),
                mirror: vec![CrioMirror {
                    location: location.clone(),
                    insecure: url.scheme() == "http",
                }],
            })
            .collect(),
    };
    let text = toml::to_string(&conf).map_err(|e| e.to_string())?;
    Ok(format!(
        "# Written by pinode (cluster.registry_mirror): these registries through the mirror \
         first.\n{text}"
    ))
}

/// The stage's part for a kubeadm node with a mirror: the drop-in, placed before CRI-O is
/// installed. A mirror URL that passed [`check_url`] always renders; should it not, the
/// node keeps pulling from the registries themselves (nothing is added).
pub(crate) fn add_crio(
    ctx: &StageContext,
    mirror: &str,
    files: &mut Vec<BootFile>,
    install_lines: &mut String,
    prepare_steps: &mut String,
) {
    let Ok(text) = crio_registries_conf(mirror) else {
        return;
    };
    let boot_file = format!("{}/{CRIO_FILE}", ctx.boot_dir);
    let paths = [
        ("@FILE@", boot_file.as_str()),
        ("@NODE_DIR@", ctx.node_dir),
        ("@NAME@", CRIO_FILE),
        ("@TARGET@", CRIO_PATH),
    ];
    files.push(BootFile {
        path: boot_file.clone(),
        contents: text.into_bytes(),
        secret: false,
    });
    install_lines.push_str(&fill(INSTALL_LINES, &paths));
    prepare_steps.push_str(&fill(PREPARE_STEPS, &paths));
}

/// K3s's registries.yaml for `mirror`.
pub(crate) fn k3s_registries_yaml(mirror: &str) -> String {
    let endpoint = json!({"endpoint": [mirror]});
    let mut mirrors = serde_json::Map::new();
    for registry in REGISTRIES.iter().chain(&["*"]) {
        mirrors.insert(registry.to_string(), endpoint.clone());
    }
    let doc = json!({"mirrors": Value::Object(mirrors)});
    // JSON is YAML: every key quoted, as the wildcard must be.
    format!(
        "# Written by pinode (cluster.registry_mirror): every registry through the mirror, \
         then the registry itself.\n{}\n",
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    )
}

/// Moves the file off the boot partition (first stage) into the node's directory.
const INSTALL_LINES: &str = r##"	install -m 644 "$boot/@FILE@" @NODE_DIR@/@NAME@ || return 1
"##;

/// Places it where the distribution reads it (`@TARGET@`: K3s's or CRI-O's path), before
/// the distribution is installed (and first started).
const PREPARE_STEPS: &str = r##"	step "registry mirror" install -D -m 644 @NODE_DIR@/@NAME@ @TARGET@
"##;

/// The stage's part for a K3s node with a mirror: the file, its install line and its
/// prepare step, added to what K3s's stage has.
pub(crate) fn add_k3s(
    ctx: &StageContext,
    mirror: &str,
    files: &mut Vec<BootFile>,
    install_lines: &mut String,
    prepare_steps: &mut String,
) {
    let boot_file = format!("{}/{FILE}", ctx.boot_dir);
    let paths = [
        ("@FILE@", boot_file.as_str()),
        ("@NODE_DIR@", ctx.node_dir),
        ("@NAME@", FILE),
        ("@TARGET@", K3S_PATH),
    ];
    files.push(BootFile {
        path: boot_file.clone(),
        contents: k3s_registries_yaml(mirror).into_bytes(),
        secret: false,
    });
    install_lines.push_str(&fill(INSTALL_LINES, &paths));
    prepare_steps.push_str(&fill(PREPARE_STEPS, &paths));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(check_url("https://mirror.lan:5000").is_ok());
        assert!(check_url("http://10.0.0.2:5000").is_ok());
        assert!(check_url("https://u:p@mirror.lan").is_err());
        assert!(check_url("https://mirror.lan/?a=b").is_err());
        assert!(check_url("ftp://mirror.lan").is_err());
        assert!(check_url("mirror.lan:5000").is_err());
        assert!(check("https://m.lan", Distribution::Microk8s).is_ok());
        assert!(check("https://m.lan", Distribution::Kubeadm).is_ok());
    }

    #[test]
    fn registries_yaml_names_every_registry_and_the_wildcard() {
        let text = k3s_registries_yaml("https://mirror.lan:5000");
        let doc: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
        for registry in REGISTRIES.iter().chain(&["*"]) {
            assert_eq!(
                doc["mirrors"][*registry]["endpoint"][0].as_str(),
                Some("https://mirror.lan:5000")
            );
        }
        assert!(text.contains("\"*\""));
    }

    #[test]
    fn crio_drop_in() {
        let text = crio_registries_conf("http://10.0.0.2:5000/cache/").unwrap();
        let doc: toml::Value = toml::from_str(&text).unwrap();
        let registries = doc["registry"].as_array().unwrap();
        assert_eq!(registries.len(), REGISTRIES.len());
        let mirror = &registries[0]["mirror"][0];
        assert_eq!(mirror["location"].as_str(), Some("10.0.0.2:5000/cache"));
        assert_eq!(mirror["insecure"].as_bool(), Some(true));
    }

    #[test]
    fn containerd_hosts_files() {
        let files = containerd_hosts("https://mirror.lan:5000").unwrap();
        assert_eq!(files.len(), REGISTRIES.len());
        let (registry, text) = &files[0];
        assert_eq!(*registry, "docker.io");
        let doc: toml::Value = toml::from_str(text).unwrap();
        assert_eq!(doc["server"].as_str(), Some("https://registry-1.docker.io"));
        let host = &doc["host"]["https://mirror.lan:5000"];
        assert_eq!(host["capabilities"].as_array().unwrap().len(), 2);
    }
}
