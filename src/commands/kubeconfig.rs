//! `pinode kubeconfig`: the founding server's admin kubeconfig, fetched over SSH with pinode's
//! known_hosts, renamed for the cluster and pointed at its API address, then written to a
//! file or merged into the user's kubeconfig.

use crate::cli::KubeconfigArgs;
use crate::error::Error;
use pinode::kubeconfig::{self, Kubeconfig, Written};
use pinode::plan::hostkey;
use pinode::remote::{Ssh, Target};

use super::{Output, load_profile};

pub fn run(args: &KubeconfigArgs, out: &Output) -> Result<(), Error> {
    let loaded = load_profile(&args.profile, out)?;
    let settings = pinode::edge::settings();
    let plan = super::reachable_cluster(
        &loaded,
        &args.address,
        "`pinode kubeconfig` fetches a cluster's kubeconfig",
    )?;
    let founder = loaded
        .nodes
        .iter()
        .find(|n| n.hostname == plan.founder)
        .ok_or_else(|| Error::Usage(format!("the profile has no node {}", plan.founder)))?;
    let target = Target::node(&plan.founder, &founder.user.name, &args.address);
    let name = args.context.clone().unwrap_or_else(|| plan.name.clone());
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(Error::Usage(format!(
            "--context {name:?}: a context name must be a non-empty line of text"
        )));
    }
    let known_hosts = hostkey::known_hosts_path(settings, &plan.name);
    let ssh = Ssh::new(known_hosts);
    // The distribution's admin kubeconfig is root-only, hence `sudo`.
    let (command, source) = plan.distribution.admin_kubeconfig();
    let bytes = ssh.run(
        &target,
        &format!("sudo {command}"),
        kubeconfig::MAX_KUBECONFIG,
    )?;
    let fetched = Kubeconfig::parse(&bytes, &format!("the founding server's {source}"))?;
    let ours = fetched.for_cluster(&name, &plan.api)?;
    if let Some(path) = &args.output {
        let written = kubeconfig::write_alone(path, &ours)?;
        out.say(match written {
            Written::Unchanged => format!("{}: unchanged (context {name})", path.display()),
            Written::Changed { .. } => {
                format!(
                    "wrote {} (context {name}, server {})",
                    path.display(),
                    plan.api
                )
            }
        });
        return Ok(());
    }
    let path = kubeconfig::default_path(settings)?;
    let (merged, written) = kubeconfig::merge_into(&path, &ours, args.set_current)?;
    out.say(match written {
        Written::Unchanged => format!(
            "{}: already holds context {name}; unchanged",
            path.display()
        ),
        Written::Changed { backup } => format!(
            "merged context {name} (server {}) into {}{}",
            plan.api,
            path.display(),
            backup.map_or_else(String::new, |b| format!(
                "; the earlier file is {}",
                b.display()
            ))
        ),
    });
    if merged.current_context.as_deref() != Some(name.as_str()) {
        out.say(format!("use it with: kubectl --context {name} get nodes"));
    }
    Ok(())
}
