//! Rendering: a node's plan, for one OS, becomes its boot content — the first-boot programs
//! for the image's route, the kernel command-line tokens and the config.txt lines.
//!
//! Two stages run on the node. Stage 1 (`stage1`: `firstrun.sh` or a cloud-init seed, by
//! route) sets up the system; stage 2 (`stage2`, cluster nodes only) installs the cluster
//! engine and the CI runner once the network is up. Both are shell programs built from the
//! one library in `shell`. The output, a [`BootContent`], is plain data: `pinode render`
//! writes it to a folder, [`crate::bootfs::apply`] applies it to a FAT partition.

pub mod network;
mod shell;
mod stage1;
mod stage2;

use crate::bootfs::content::{BootContent, BootFile, CmdlineEdit};
use crate::osinfo::{InitChooser, InitRoute, OsInfo};
use crate::plan::NodePlan;
use stage1::{cloudinit, firstrun};

/// A value that cannot be rendered safely (never contains the value itself).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

impl From<crate::engine::EngineError> for RenderError {
    fn from(e: crate::engine::EngineError) -> Self {
        RenderError(e.to_string())
    }
}

impl From<crate::ci::CiError> for RenderError {
    fn from(e: crate::ci::CiError) -> Self {
        RenderError(e.to_string())
    }
}

/// Kernel command-line tokens the memory cgroup needs (platform.md: the Pi firmware passes
/// `cgroup_disable=memory`; `cgroup_memory=1` and `cgroup_enable=cpuset` are what most guides
/// add and are harmless).
const CGROUP_TOKENS: [&str; 3] = [
    "cgroup_memory=1",
    "cgroup_enable=memory",
    "cgroup_enable=cpuset",
];

/// Renders `plan` for an image described by `os`.
pub fn render(plan: &NodePlan, os: &OsInfo) -> Result<BootContent, RenderError> {
    if let Some(why) = os.route_refusal() {
        return Err(RenderError(why));
    }
    if let Some(why) = plan.cluster.as_ref().and_then(|c| c.engine.os_refusal(os)) {
        return Err(RenderError(why));
    }
    let generation = os.generation;
    let mut files = Vec::new();
    let mut cmdline = Vec::new();
    if plan.boot.cgroups {
        cmdline.extend(
            CGROUP_TOKENS
                .iter()
                .map(|t| CmdlineEdit::Ensure(t.to_string())),
        );
    }
    if let Some(wifi) = &plan.wifi {
        cmdline.push(CmdlineEdit::Set(
            "cfg80211.ieee80211_regdom".into(),
            wifi.country.clone(),
        ));
    }
    cmdline.extend(
        plan.boot
            .cmdline_extra
            .iter()
            .map(|t| CmdlineEdit::Ensure(t.clone())),
    );
    if plan.ssh_enabled {
        files.push(BootFile {
            path: "ssh".into(),
            contents: Vec::new(),
            secret: false,
        });
    }
    let mut instance_id = None;
    match os.init {
        InitRoute::Firstrun => {
            let hash = plan.user.password_hash.as_deref().unwrap_or("*");
            files.push(BootFile {
                path: "userconf.txt".into(),
                contents: format!("{}:{hash}\n", plan.user.name).into_bytes(),
                secret: true,
            });
            files.push(BootFile {
                path: firstrun::SCRIPT.into(),
                contents: firstrun::render(plan, generation)?.into_bytes(),
                secret: true,
            });
            for (key, value) in firstrun::cmdline_tokens(generation) {
                cmdline.push(CmdlineEdit::Set(key.into(), value));
            }
        }
        InitRoute::CloudInit => {
            if os.cloud_init_installed == Some(false) {
                return Err(RenderError(format!(
                    "the image has no cloud-init (/usr/bin/cloud-init is missing on its root \
                     partition), so a cloud-init seed would be ignored and nobody could log in; \
                     use {}",
                    os.chosen_by
                        .unwrap_or(InitChooser::Profile)
                        .ask_for(InitRoute::Firstrun)
                )));
            }
            let id = cloudinit::new_instance_id(&plan.hostname)?;
            files.push(BootFile {
                path: "user-data".into(),
                contents: cloudinit::user_data(plan, os)?.into_bytes(),
                secret: true,
            });
            files.push(BootFile {
                path: "meta-data".into(),
                contents: cloudinit::meta_data(plan, &id)?.into_bytes(),
                secret: false,
            });
            if let Some(network) = cloudinit::network_config(plan)? {
                files.push(BootFile {
                    path: "network-config".into(),
                    contents: network.into_bytes(),
                    secret: true,
                });
            }
            cmdline.push(CmdlineEdit::Set("ds".into(), format!("nocloud;i={id}")));
            instance_id = Some(id);
        }
        InitRoute::None => {
            return Err(RenderError(format!(
                "cannot tell how this image runs its first-boot setup ({}); set os.init to \
                 firstrun or cloud-init in the profile",
                os.evidence.join("; ")
            )));
        }
    }
    if let Some(cluster) = &plan.cluster {
        files.extend(stage2::files(plan, cluster, os.boot_mount())?);
    }
    Ok(BootContent {
        hostname: plan.hostname.clone(),
        role: plan.role,
        generation: os.generation,
        init: os.init,
        files,
        cmdline,
        arm_64bit: plan.boot.arm_64bit,
        config_extra: plan.boot.config_extra.clone(),
        instance_id,
        airgap_dir: stage2::airgap_dir(plan),
        bulk: Vec::new(),
    })
}
