//! `pinode profile check` and `pinode profile schema`.

use std::path::Path;

use crate::error::Error;
use pinode::engine::Distribution;
use pinode::fetch::Redacted;

use super::Output;
use pinode::plan::check::{self, ProblemKind};
use pinode::profile::network::Ipv4Config;
use pinode::profile::{Checked, LoadedProfile, NodeConfig, ProfileError, sort_by_position};

/// Checks the profile and what `prepare` would need (files, variables, secrets), listing
/// every problem of the run at once; with `strict`, what this machine lacks is an error too.
pub fn check(
    path: &Path,
    strict: bool,
    sources: &super::Sources,
    out: &Output,
) -> Result<(), Error> {
    let Checked {
        profile: loaded,
        mut errors,
    } = LoadedProfile::load_checked(path)?;
    let settings = pinode::edge::settings();
    if let Some(loaded) = &loaded {
        for w in &loaded.warnings {
            out.warn(w.to_string());
        }
        let all: Vec<&NodeConfig> = loaded.nodes.iter().collect();
        for problem in check::check(loaded, &all, settings, None) {
            match problem.kind {
                ProblemKind::Environment if strict => errors.push(problem.error),
                ProblemKind::Environment | ProblemKind::Exposed | ProblemKind::Advice => {
                    out.warn(problem.error.to_string())
                }
                ProblemKind::Error => errors.push(problem.error),
            }
        }
    }
    sort_by_position(&mut errors);
    let loaded = match loaded {
        Some(loaded) if errors.is_empty() => loaded,
        _ => return Err(ProfileError::Invalid(errors).into()),
    };
    let plan = pinode::plan::cluster::ClusterPlan::of(&loaded, settings);
    let p = &loaded.profile;
    out.say(format!(
        "{}: valid, {} node(s)",
        path.display(),
        loaded.nodes.len()
    ));
    out.say(format!(
        "  os: {} (first boot: {})",
        Redacted(&p.os.image),
        p.os.init
    ));
    if let Some(plan) = &plan {
        let servers = plan.servers.len();
        let datastore = plan.distribution.datastore(plan.ha);
        out.say(format!(
            "  cluster: {} ({servers} server(s), {datastore})",
            plan.name
        ));
        out.say(format!("  api: {}", Redacted(&plan.api)));
        if let Some(vip) = &plan.kube_vip {
            out.say(format!(
                "  vip: {} (kube-vip {} on the servers' {}, ARP)",
                vip.address,
                pinode::engine::KUBE_VIP_VERSION,
                vip.interface
            ));
        }
        out.say(format!("  token: {}", plan.token));
        let distribution = plan.distribution;
        match distribution {
            Distribution::K3s if plan.spec.airgap => {
                if let Some(release) = pinode::engine::airgap::Release::of(plan.spec.k3s()) {
                    let cache =
                        pinode::cache::store::Cache::open(sources.cache_dir.as_deref()).ok();
                    out.say(format!(
                        "  air-gap: {}",
                        pinode::engine::airgap::describe(&release, cache.as_ref())
                    ));
                }
            }
            Distribution::K3s => out.say(format!(
                "  k3s: {}, installer {}",
                plan.spec.engine_version(),
                Redacted(&plan.spec.k3s().install_url)
            )),
            Distribution::Microk8s => out.say(format!(
                "  microk8s: {}",
                Redacted(&plan.spec.microk8s().summary())
            )),
            Distribution::Kubeadm => out.say(format!(
                "  kubeadm: {}",
                Redacted(&plan.spec.kubeadm().summary())
            )),
        }
        out.say(format!("  join: {}", distribution.join_mechanism()));
        for (at, runner) in plan.spec.runner.iter().flat_map(|r| r.entries()) {
            let sources: Vec<String> = pinode::ci::secrets_of(runner)
                .into_iter()
                .filter_map(|slot| {
                    pinode::profile::v1::secrets::one(pinode::profile::v1::secrets::runner_secret(
                        &at, runner, slot,
                    ))
                })
                .map(|secret| secret.to_string())
                .collect();
            out.say(format!(
                "  runner: {} from {} ({})",
                Redacted(&runner.describe()),
                plan.founder,
                sources.join(", ")
            ));
        }
        let (lines, images_note) = plan.spec.chart_and_mirror_lines();
        lines
            .iter()
            .for_each(|l| out.say(format!("  {}", Redacted(l))));
        if let Some(note) = images_note {
            out.note(&note);
        }
    }
    for node in &loaded.nodes {
        let role = match &plan {
            Some(plan) => format!(
                "{} {}",
                plan.distribution,
                plan.distribution
                    .describe_role(plan.role_of(&node.hostname), plan.ha)
            ),
            None => "no cluster".to_string(),
        };
        let mut facts = vec![role, format!("user {}", node.user.name)];
        let keys = node.user.keys.len();
        if keys > 0 {
            facts.push(format!("{keys} key(s)"));
        }
        if node.user.keys_file.is_some() {
            facts.push("keys from file".into());
        }
        if let Some(wifi) = &node.wifi {
            facts.push(format!(
                "wi-fi {} ({})",
                pinode::ui::quoted(&wifi.ssid),
                wifi.country
            ));
        }
        facts.push(node.timezone.clone());
        for (device, iface) in [
            ("eth0", &node.network.ethernet),
            ("wlan0", &node.network.wifi),
        ] {
            if let Ipv4Config::Static { address, .. } = iface.ipv4 {
                facts.push(format!("{device} {address}"));
            }
        }
        // How the node reaches the API: its address, or the founder's name pinned in
        // /etc/hosts (K3s cannot resolve mDNS names).
        if let Some(plan) = &plan
            && let Some(join) = plan.join_of(&node.hostname)
        {
            facts.push(match plan.distribution {
                // MicroK8s nodes join the founder's cluster agent, not the API.
                Distribution::Microk8s => format!(
                    "joins {}:{} (the founder's cluster agent)",
                    plan.founder_host,
                    pinode::engine::MICROK8S_JOIN_PORT
                ),
                _ => join.to_string(),
            });
        }
        out.say(format!("  {:<16} {}", node.hostname, facts.join(", ")));
    }
    Ok(())
}

pub fn schema(out: &Output) -> Result<(), Error> {
    out.json(&pinode::profile::json_schema());
    Ok(())
}
