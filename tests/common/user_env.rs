//! An environment like a user's for tests that render nodes through the real binary: a home
//! with an SSH public key, the cluster and runner tokens in the environment, and a private
//! state directory (where pinode keeps generated tokens and host keys).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{KEY_1, pinode, run};

/// The tokens every such test uses (K3s accepts any non-empty password-style token; the
/// runner token has GitLab's `glrt-` form).
pub const K3S_TOKEN: &str = "k3s-cluster-token-0123456789abcdef";
pub const RUNNER_TOKEN: &str = "glrt-test_runner-token-0123456789";

pub struct UserEnv {
    pub dir: tempfile::TempDir,
}

impl UserEnv {
    pub fn new() -> UserEnv {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("home/.ssh")).unwrap();
        std::fs::write(
            dir.path().join("home/.ssh/id_ed25519.pub"),
            format!("{KEY_1}\n"),
        )
        .unwrap();
        UserEnv { dir }
    }

    /// pinode as the user runs it. Not CI: these tests keep a generated token, which pinode
    /// refuses to generate under CI (truthful_output.rs tests that).
    pub fn pinode(&self) -> Command {
        let mut c = pinode();
        c.env("CI", "false")
            .env("HOME", self.dir.path().join("home"))
            .env("PINODE_STATE_DIR", self.dir.path().join("state"))
            .env("K3S_TOKEN", K3S_TOKEN)
            .env("GITLAB_RUNNER_TOKEN", RUNNER_TOKEN)
            .env("WIFI_PSK", "cluster passphrase");
        c
    }

    /// Renders `node` of `profile` for `generation` into a folder of its own (named by the
    /// profile, the node and the generation); returns it.
    pub fn render(&self, profile: &Path, node: &str, generation: &str) -> PathBuf {
        let out = self.dir.path().join(format!(
            "render-{}-{node}-{generation}",
            profile.file_stem().unwrap().to_string_lossy()
        ));
        run(self
            .pinode()
            .args(["render", "--profile"])
            .arg(profile)
            .args(["--node", node, "--generation", generation, "--out-dir"])
            .arg(&out));
        out
    }

    /// `pinode profile check PROFILE`'s output (it must succeed).
    pub fn check(&self, profile: &Path) -> String {
        run(self.pinode().args(["profile", "check"]).arg(profile))
    }
}
