//! Turning a node into boot-partition content: the first-boot program for the image's route,
//! the kernel command-line tokens and the config.txt lines.
//!
//! The output, a [`Customisation`], is plain data: `render` writes it to a folder, the image
//! engine ([`crate::customise`]) applies it to a FAT partition.

pub mod cloudinit;
pub mod firstboot;
pub mod firstrun;
pub mod k3s;
pub mod k3s_flags;
pub mod shell;

use crate::osinfo::{InitRoute, OsInfo};
pub use crate::plan::NodePlan;

/// A value that cannot be rendered safely (never contains the value itself).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct RenderError(pub String);

/// Kernel command-line tokens the memory cgroup needs (platform.md: the Pi firmware passes
/// `cgroup_disable=memory`; `cgroup_memory=1` and `cgroup_enable=cpuset` are what most guides
/// add and are harmless).
pub const CGROUP_TOKENS: [&str; 3] = [
    "cgroup_memory=1",
    "cgroup_enable=memory",
    "cgroup_enable=cpuset",
];

/// A file for the boot partition.
#[derive(Debug, Clone)]
pub struct BootFile {
    /// Path relative to the partition root, `/`-separated.
    pub path: String,
    pub contents: Vec<u8>,
    /// Holds a secret (removed by the node on first boot; written 0600 by `render`).
    pub secret: bool,
}

/// One change to cmdline.txt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CmdlineEdit {
    /// The token, exactly once.
    Ensure(String),
    /// `key=value` as the only token with that key.
    Set(String, String),
}

impl CmdlineEdit {
    pub fn token(&self) -> String {
        match self {
            CmdlineEdit::Ensure(t) => t.clone(),
            CmdlineEdit::Set(k, v) => format!("{k}={v}"),
        }
    }
}

/// Everything a node changes on the boot partition.
#[derive(Debug, Clone)]
pub struct Customisation {
    pub hostname: String,
    pub role: crate::profile::Role,
    pub os: OsInfo,
    pub files: Vec<BootFile>,
    pub cmdline: Vec<CmdlineEdit>,
    /// `arm_64bit=1` must be in effect for every board.
    pub arm_64bit: bool,
    pub config_extra: Vec<String>,
    /// The cloud-init instance-id, on that route.
    pub instance_id: Option<String>,
}

/// Renders `plan` for an image described by `os`.
pub fn render(plan: &NodePlan, os: &OsInfo) -> Result<Customisation, RenderError> {
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
                return Err(RenderError(
                    "the image has no cloud-init (/usr/bin/cloud-init is missing on its root \
                     partition), so a cloud-init seed would be ignored and nobody could log in; \
                     use os.init: firstrun"
                        .into(),
                ));
            }
            let id = cloudinit::new_instance_id(&plan.hostname)?;
            files.push(BootFile {
                path: "user-data".into(),
                contents: cloudinit::user_data(plan, generation)?.into_bytes(),
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
        files.extend(firstboot::files(plan, cluster, generation.boot_mount())?);
    }
    Ok(Customisation {
        hostname: plan.hostname.clone(),
        role: plan.role,
        os: os.clone(),
        files,
        cmdline,
        arm_64bit: plan.boot.arm_64bit,
        config_extra: plan.boot.config_extra.clone(),
        instance_id,
    })
}
