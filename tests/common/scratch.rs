//! A scratch root for running pinode's first-boot scripts for real, without touching the host:
//! a copy of /etc and empty /home, /boot, /var/log, /var/lib, /usr/local/lib and
//! /sys/fs/cgroup, bind-mounted over the real ones in a private mount namespace (root only).
//! The user tools (usermod, chpasswd, visudo…) are the real ones; commands that would touch
//! the running host (systemctl, locale-gen, rfkill, and whatever a test adds) are recording
//! stand-ins that append their arguments to `stub.log`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{output, run};

pub struct ScratchRoot {
    dir: tempfile::TempDir,
    /// The boot partition's mount point on the node, e.g. `/boot/firmware`.
    pub boot_dir: String,
}

/// Directories bind-mounted over the host's: (scratch name, mount point).
const BINDS: [(&str, &str); 7] = [
    ("etc", "/etc"),
    ("home", "/home"),
    ("boot", "/boot"),
    ("varlib", "/var/lib"),
    ("varlog", "/var/log"),
    ("usrlocallib", "/usr/local/lib"),
    ("cgroup", "/sys/fs/cgroup"),
];

impl ScratchRoot {
    /// A system whose first user (uid 1000) is `pi`, with a v2 cgroup hierarchy offering
    /// the memory controller.
    pub fn new(boot_dir: &str) -> ScratchRoot {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        run(Command::new("cp")
            .arg("-a")
            .arg("/etc")
            .arg(root.join("etc")));
        // The host may have its own uid 1000; the scratch system's first user is "pi".
        let taken = drop_id_1000(&root.join("etc/passwd"), &root.join("etc/group"));
        for file in ["etc/shadow", "etc/gshadow"] {
            let path = root.join(file);
            if let Ok(text) = std::fs::read_to_string(&path) {
                let kept: String = text
                    .lines()
                    .filter(|l| !taken.iter().any(|n| l.starts_with(&format!("{n}:"))))
                    .map(|l| format!("{l}\n"))
                    .collect();
                std::fs::write(&path, kept).unwrap();
            }
        }
        append(
            &root.join("etc/passwd"),
            "pi:x:1000:1000:,,,:/home/pi:/bin/bash\n",
        );
        append(&root.join("etc/group"), "pi:x:1000:\n");
        append(&root.join("etc/shadow"), "pi:*:19000:0:99999:7:::\n");
        if root.join("etc/gshadow").exists() {
            append(&root.join("etc/gshadow"), "pi:!::\n");
        }
        std::fs::write(root.join("etc/hostname"), "raspberrypi\n").unwrap();
        std::fs::write(
            root.join("etc/hosts"),
            "127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n",
        )
        .unwrap();
        for (name, _) in BINDS.iter().skip(1) {
            std::fs::create_dir_all(root.join(name)).unwrap();
        }
        std::fs::create_dir_all(root.join("home/pi")).unwrap();
        run(Command::new("chown")
            .arg("1000:1000")
            .arg(root.join("home/pi")));
        std::fs::write(
            root.join("cgroup/cgroup.controllers"),
            "cpuset cpu io memory hugetlb pids rdma misc\n",
        )
        .unwrap();
        let scratch = ScratchRoot {
            dir,
            boot_dir: boot_dir.to_string(),
        };
        std::fs::create_dir_all(scratch.boot()).unwrap();
        for tool in ["systemctl", "locale-gen", "rfkill"] {
            scratch.stub(tool, "");
        }
        scratch
    }

    /// A path inside the scratch root, e.g. `etc/hostname`.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p.trim_start_matches('/'))
    }

    /// The boot partition's directory inside the scratch root.
    pub fn boot(&self) -> PathBuf {
        self.path("boot").join(
            self.boot_dir
                .trim_start_matches("/boot")
                .trim_start_matches('/'),
        )
    }

    /// A recording stand-in for `tool` that also runs `body` (sh).
    pub fn stub(&self, tool: &str, body: &str) {
        let stubs = self.path("stubs");
        std::fs::create_dir_all(&stubs).unwrap();
        let path = stubs.join(tool);
        let log = self.path("stub.log");
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{tool} $*\" >>'{}'\n{body}\n",
                log.display()
            ),
        )
        .unwrap();
        run(Command::new("chmod").arg("755").arg(&path));
    }

    /// Runs `command` (sh) inside the namespace, with the stand-ins first on PATH.
    pub fn run(&self, command: &str) -> Output {
        let r = self.dir.path().display();
        let binds: String = BINDS
            .iter()
            .map(|(name, at)| format!("mount --bind {r}/{name} {at}; "))
            .collect();
        let script =
            format!("set -e; mount --make-rprivate /; {binds}PATH={r}/stubs:$PATH; {command}");
        output(Command::new("unshare").args(["--mount", "sh", "-c", &script]))
    }

    /// The stand-ins' log.
    pub fn stub_log(&self) -> String {
        std::fs::read_to_string(self.path("stub.log")).unwrap_or_default()
    }
}

/// Removes users and groups with id 1000; returns their names.
fn drop_id_1000(passwd: &Path, group: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for path in [passwd, group] {
        let text = std::fs::read_to_string(path).unwrap();
        let mut kept = String::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(':').collect();
            if fields.get(2) == Some(&"1000") {
                names.push(fields[0].to_string());
            } else {
                kept.push_str(line);
                kept.push('\n');
            }
        }
        std::fs::write(path, kept).unwrap();
    }
    names
}

fn append(path: &Path, line: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .unwrap()
        .write_all(line.as_bytes())
        .unwrap();
}
