//! An environment like a user's for tests that render nodes through the real binary: a home
//! with an SSH public key, the cluster and runner tokens in the environment, and a private
//! state directory (where pinode keeps generated tokens and host keys).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::scratch::ScratchRoot;
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

    /// Renders `node` of `profile` for the OS of the image `image` (an image file pinode
    /// inspects, e.g. the Ubuntu fixture) into a folder of its own; returns it.
    pub fn render_for_image(&self, profile: &Path, node: &str, image: &Path) -> PathBuf {
        let out = self.dir.path().join(format!(
            "render-{}-{node}-{}",
            profile.file_stem().unwrap().to_string_lossy(),
            image.file_stem().unwrap().to_string_lossy()
        ));
        run(self
            .pinode()
            .args(["render", "--profile"])
            .arg(profile)
            .args(["--node", node, "--image"])
            .arg(image)
            .arg("--out-dir")
            .arg(&out));
        out
    }

    /// The full K3s token pinode gives every node of `cluster` whose secret is `secret`:
    /// `K10`, the SHA-256 of the kept server CA's file as stored (hashed here, not by
    /// pinode), `::server:` and the secret.
    pub fn k3s_full_token(&self, cluster: &str, secret: &str) -> String {
        let ca = self
            .dir
            .path()
            .join(format!("state/clusters/{cluster}/k3s-ca/server-ca.crt"));
        format!("K10{}::server:{secret}", super::sha256_file(&ca))
    }

    /// `pinode profile check PROFILE`'s output (it must succeed).
    pub fn check(&self, profile: &Path) -> String {
        run(self.pinode().args(["profile", "check"]).arg(profile))
    }
}

/// `node`'s first stage in a scratch root: rendered for Bookworm, its boot files on the
/// scratch FAT with a cmdline.txt, `curl` answering every download with `installer` (a
/// stand-in for the K3s install script), `getent` answering `.local` names (no mDNS here),
/// `before` run on the root, then firstrun.sh, which must succeed (it hands over to the
/// second stage, run by the caller). Returns the root and the rendered folder.
pub fn first_stage_in_scratch(
    env: &UserEnv,
    profile: &Path,
    node: &str,
    installer: &str,
    before: impl FnOnce(&ScratchRoot),
) -> (ScratchRoot, PathBuf) {
    first_stage_in_scratch_for(env, profile, node, installer, None, before)
}

/// [`first_stage_in_scratch`] for the OS of `image` when given (rendered with `--image`): on
/// a cloud-init image (Ubuntu) the first stage is cloud-init, whose `runcmd` hands over to
/// the second stage with `firstboot.sh install BOOT_DIR`; that handover is what runs here.
pub fn first_stage_in_scratch_for(
    env: &UserEnv,
    profile: &Path,
    node: &str,
    installer: &str,
    image: Option<&Path>,
    before: impl FnOnce(&ScratchRoot),
) -> (ScratchRoot, PathBuf) {
    let rendered = match image {
        Some(image) => env.render_for_image(profile, node, image),
        None => env.render(profile, node, "bookworm"),
    };
    let root = ScratchRoot::new("/boot/firmware");
    run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", rendered.join("boot").display()))
        .arg(root.boot()));
    let tokens = std::fs::read_to_string(rendered.join("cmdline.txt.append")).unwrap();
    std::fs::write(
        root.boot().join("cmdline.txt"),
        format!("console=tty1 root=PARTUUID=1234-02 rootwait {tokens}"),
    )
    .unwrap();
    let stand_in = root.path("fake-installer.sh");
    std::fs::write(&stand_in, installer).unwrap();
    root.stub("curl", &format!(
        "while [ $# -gt 0 ]; do case \"$1\" in --output) out=$2; shift ;; esac; shift; done\ncp '{}' \"$out\"",
        stand_in.display()
    ));
    root.stub("getent", "case \"$1 $2\" in 'ahostsv4 '*.local) echo \"10.0.0.5 STREAM $2\"; exit 0 ;; esac\nexec /usr/bin/getent \"$@\"");
    before(&root);
    let first = if image.is_some() {
        // cloud-init's users module runs before its runcmd: the profile's user exists.
        let seed = std::fs::read_to_string(rendered.join("boot/user-data")).unwrap();
        let json: String = seed
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let doc: serde_json::Value = serde_json::from_str(&json).unwrap();
        let name = doc["users"][0]["name"].as_str().unwrap().to_string();
        let out = root.run(&format!("useradd --create-home {name}"));
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        "sh /boot/firmware/pinode/firstboot.sh install /boot/firmware"
    } else {
        "sh /boot/firmware/firstrun.sh"
    };
    let out = root.run(first);
    assert!(
        out.status.success(),
        "{first}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (root, rendered)
}
