//! `pinode profile check` and `pinode profile schema`.

use std::path::Path;

use crate::error::Error;
use pinode::fetch::Redacted;

use super::{Output, load_profile};

pub fn check(path: &Path, out: &Output) -> Result<(), Error> {
    let loaded = load_profile(path, out)?;
    let plan = pinode::plan::cluster::ClusterPlan::of(&loaded);
    if let Some(plan) = &plan {
        // A token K3s cannot parse is found now, not on the node at first boot.
        plan.check_token(&loaded)?;
    }
    let p = &loaded.profile;
    out.say(format!(
        "{}: valid, {} node(s)",
        path.display(),
        loaded.nodes.len()
    ));
    out.say(format!(
        "  os: {} (first boot: {})",
        Redacted(&p.os.image),
        init_name(p.os.init)
    ));
    if let Some(plan) = &plan {
        let servers = plan.servers.len();
        let datastore = if plan.ha {
            "embedded etcd (HA)"
        } else {
            "single server, default datastore"
        };
        out.say(format!(
            "  cluster: {} ({servers} server(s), {datastore})",
            plan.name
        ));
        out.say(format!("  api: {}", Redacted(&plan.api)));
        out.say(format!("  token: {}", plan.token));
        let k3s = &plan.spec.k3s;
        let version = k3s
            .version
            .clone()
            .unwrap_or_else(|| format!("channel {}", k3s.channel));
        out.say(format!(
            "  k3s: {version}, installer {}",
            Redacted(&k3s.install_url)
        ));
        if let Some(runner) = &plan.spec.runner {
            let source = match (&runner.token_env, &runner.token_file) {
                (Some(var), _) => format!("env {var}"),
                (None, Some(file)) => format!("file {file}"),
                (None, None) => String::new(),
            };
            out.say(format!(
                "  runner: GitLab {} from {} (token: {source})",
                Redacted(&runner.url),
                plan.founder
            ));
        }
    }
    for node in &loaded.nodes {
        let role = match &plan {
            Some(plan) => plan.role_of(&node.hostname).describe(plan.ha).to_string(),
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
                pinode::ui::quoted(&wifi.value.ssid),
                wifi.value.country
            ));
        }
        facts.push(node.timezone.clone());
        out.say(format!("  {:<16} {}", node.hostname, facts.join(", ")));
    }
    Ok(())
}

fn init_name(init: pinode::profile::InitChoice) -> &'static str {
    match init {
        pinode::profile::InitChoice::Auto => "auto",
        pinode::profile::InitChoice::Firstrun => "firstrun",
        pinode::profile::InitChoice::CloudInit => "cloud-init",
    }
}

pub fn schema(out: &Output) -> Result<(), Error> {
    out.json(&pinode::profile::json_schema());
    Ok(())
}
