//! `pinode kubeconfig` against a real OpenSSH server: sshd on 127.0.0.1 with the host key
//! pinode made for the founding server, the test's client key in ssh-agent, and a named
//! stand-in for `sudo cat /etc/rancher/k3s/k3s.yaml` (sshd's ForceCommand) that answers
//! with a K3s kubeconfig fixture. Proves strict host key checking with pinode's
//! known_hosts (and its failure with another key), and a merge that leaves other contexts
//! byte-identical, writes 0600, changes nothing on a second run and is read by kubectl.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::sshd::*;
use common::*;

/// The login user on the test's sshd: an account of this machine (created when missing).
const USER: &str = "pinodekube";
const API: &str = "https://192.0.2.10:6443";

/// K3s's /etc/rancher/k3s/k3s.yaml as K3s writes it (certificates shortened).
const K3S_YAML: &str = "apiVersion: v1
clusters:
- cluster:
    certificate-authority-data: Q0EgZGF0YQ==
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
kind: Config
preferences: {}
users:
- name: default
  user:
    client-certificate-data: Q0VSVCBkYXRh
    client-key-data: S0VZLXNlY3JldC1rZXktZGF0YQ==
";

/// A user's kubeconfig with two other clusters, written by hand (not as pinode writes).
const OTHERS: &str = "apiVersion: v1
kind: Config
clusters:
- name: prod
  cluster:
    server: https://prod.example:6443
    insecure-skip-tls-verify: true
- name: dev
  cluster: {server: 'https://dev.example:443', certificate-authority-data: REVW}
contexts:
- name: prod
  context: {cluster: prod, user: prod-admin, namespace: web}
- name: dev
  context:
    cluster: dev
    user: dev-user
users:
- name: prod-admin
  user: {token: prod-token}
- name: dev-user
  user:
    username: dev
    password: dev-pass
current-context: prod
preferences: {}
";

struct Setup {
    dir: tempfile::TempDir,
    port: u16,
    _started: Started,
}

impl Setup {
    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn pinode(&self, args: &[&str]) -> Command {
        let mut c = pinode();
        c.env("PINODE_STATE_DIR", self.path("state"))
            .env("HOME", self.path("home"))
            .env("KUBECONFIG", self.path("home/.kube/config"))
            .env("SSH_AUTH_SOCK", self.path("agent.sock"))
            .arg("kubeconfig")
            .arg("--profile")
            .arg(self.path("lab.yaml"))
            .args(args)
            .arg("--address")
            .arg(format!("kube1=127.0.0.1:{}", self.port));
        c
    }

    fn known_hosts(&self) -> PathBuf {
        self.path("state/clusters/lab/known_hosts")
    }
}

/// The profile rendered once (which makes and keeps kube1's host key), then sshd with that
/// key and an agent holding the test's client key.
fn setup() -> Setup {
    assert!(
        is_root(),
        "this test runs sshd (which needs root) as CI does; run it as root"
    );
    ensure_user(USER);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // sshd reads authorized_keys and runs the stand-in as the login user.
    chmod(d, "755");
    let client_pub = client_key(d);
    let profile = format!(
        "version: 1\ndefaults:\n  user:\n    name: {USER}\n    ssh_authorized_keys: [\"{}\"]\ncluster:\n  name: lab\n  api: {API}\n  token_env: K3S_TOKEN\nnodes:\n  - hostname: kube1\n    role: server\n  - hostname: kube2\n    role: agent\n",
        client_pub.trim()
    );
    std::fs::write(d.join("lab.yaml"), profile).unwrap();
    run(pinode()
        .env("PINODE_STATE_DIR", d.join("state"))
        .env("K3S_TOKEN", "k3s-cluster-token-0123456789abcdef")
        .args([
            "render",
            "--node",
            "kube1",
            "--generation",
            "bookworm",
            "--profile",
        ])
        .arg(d.join("lab.yaml"))
        .arg("--out-dir")
        .arg(d.join("render")));
    std::fs::write(d.join("k3s.yaml"), K3S_YAML).unwrap();
    let stand_in = d.join("sudo-cat-k3s-yaml");
    std::fs::write(
        &stand_in,
        format!(
            "#!/bin/sh\n# A stand-in for a K3s server's `sudo cat /etc/rancher/k3s/k3s.yaml`.\n\
             [ \"$SSH_ORIGINAL_COMMAND\" = 'sudo cat /etc/rancher/k3s/k3s.yaml' ] || \
             {{ echo \"unexpected command: $SSH_ORIGINAL_COMMAND\" >&2; exit 1; }}\nexec cat '{}'\n",
            d.join("k3s.yaml").display()
        ),
    )
    .unwrap();
    chmod(&stand_in, "755");
    let mut started = Started(Vec::new());
    let port = start_sshd(
        d,
        &d.join("state/clusters/lab/host-keys/kube1_ed25519"),
        USER,
        &stand_in,
        &mut started,
    );
    start_agent(d, &mut started);
    Setup {
        dir,
        port,
        _started: started,
    }
}

/// The entries of `list` named in `names`, each as its own YAML text (serde_yaml of the
/// parsed value: equal text means equal content, key order included).
fn entries(doc: &serde_yaml::Value, list: &str, names: &[&str]) -> Vec<String> {
    names
        .iter()
        .map(|name| {
            let entry = doc[list]
                .as_sequence()
                .unwrap()
                .iter()
                .find(|e| e["name"].as_str() == Some(name))
                .unwrap_or_else(|| panic!("no {list} entry {name}"));
            serde_yaml::to_string(entry).unwrap()
        })
        .collect()
}

fn yaml(path: &Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn merge_through_a_real_sshd_with_pinodes_host_key() {
    let s = setup();
    let config = s.path("home/.kube/config");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(&config, OTHERS).unwrap();
    let before = yaml(&config);

    let out = output(&mut s.pinode(&["--merge"]));
    assert!(
        out.status.success(),
        "{}\nsshd: {}",
        both(&out),
        std::fs::read_to_string(s.path(&format!("sshd-{}.log", s.port))).unwrap_or_default()
    );
    assert!(
        !both(&out).contains("S0VZ"),
        "no key material in the output"
    );
    assert_eq!(mode(&config), 0o600);
    assert_eq!(
        std::fs::read_to_string(s.path("home/.kube/config.bak")).unwrap(),
        OTHERS
    );
    let after = yaml(&config);
    for (list, names) in [
        ("clusters", &["prod", "dev"]),
        ("contexts", &["prod", "dev"]),
        ("users", &["prod-admin", "dev-user"]),
    ] {
        assert_eq!(
            entries(&before, list, names),
            entries(&after, list, names),
            "{list}"
        );
    }
    assert_eq!(
        after["current-context"].as_str(),
        Some("prod"),
        "not switched unasked"
    );
    let lab = &entries(&after, "clusters", &["lab"])[0];
    let lab: serde_yaml::Value = serde_yaml::from_str(lab).unwrap();
    assert_eq!(lab["cluster"]["server"].as_str(), Some(API));
    assert_eq!(
        lab["cluster"]["certificate-authority-data"].as_str(),
        Some("Q0EgZGF0YQ==")
    );
    let py = pyyaml(&config);
    assert_eq!(py["contexts"].as_array().unwrap().len(), 3);

    // A real kubeconfig reader: kubectl.
    let view = run(Command::new("kubectl")
        .env("KUBECONFIG", &config)
        .args(["config", "view", "-o", "json"]));
    let view: serde_json::Value = serde_json::from_str(&view).unwrap();
    let names: Vec<&str> = view["contexts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"lab"));
    let server = run(Command::new("kubectl").env("KUBECONFIG", &config).args([
        "config",
        "view",
        "--raw",
        "--minify",
        "--context",
        "lab",
        "-o",
        "jsonpath={.clusters[0].cluster.server}",
    ]));
    assert_eq!(server.trim(), API);

    // A second run changes nothing.
    let bytes = std::fs::read(&config).unwrap();
    let modified = std::fs::metadata(&config).unwrap().modified().unwrap();
    let again = run(&mut s.pinode(&["--merge"]));
    assert!(again.contains("unchanged"), "{again}");
    assert_eq!(std::fs::read(&config).unwrap(), bytes);
    assert_eq!(
        std::fs::metadata(&config).unwrap().modified().unwrap(),
        modified
    );

    // --output: the cluster alone, 0600, its context current.
    let alone = s.path("lab.kubeconfig");
    run(&mut s.pinode(&["--output", alone.to_str().unwrap()]));
    assert_eq!(mode(&alone), 0o600);
    let alone = yaml(&alone);
    assert_eq!(alone["current-context"].as_str(), Some("lab"));
    assert_eq!(alone["contexts"].as_sequence().unwrap().len(), 1);
}

#[test]
fn another_host_key_in_known_hosts_is_refused() {
    let s = setup();
    let output_file = s.path("out.kubeconfig");
    // pinode's own file: the connection succeeds.
    run(&mut s.pinode(&["--output", output_file.to_str().unwrap()]));
    // The same node with another key in the file: refused, one clear line, nothing written.
    std::fs::remove_file(&output_file).unwrap();
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(s.path("other")));
    let other = std::fs::read_to_string(s.path("other.pub")).unwrap();
    let key: Vec<&str> = other.split(' ').take(2).collect();
    let text = std::fs::read_to_string(s.known_hosts()).unwrap();
    let replaced: String = text
        .lines()
        .map(|l| {
            if l.starts_with("kube1 ") || l.starts_with("kube1.local ") {
                format!("{} {}\n", l.split(' ').next().unwrap(), key.join(" "))
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    std::fs::write(s.known_hosts(), replaced).unwrap();
    let out = output(&mut s.pinode(&["--output", output_file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    let line = only_error_line(
        &out,
        &["the host key of kube1 differs from the one pinode generated"],
    );
    assert!(line.contains("known_hosts"), "{line}");
    assert!(!output_file.exists());

    // No entry at all: refused too (no trust on first use).
    std::fs::write(s.known_hosts(), "").unwrap();
    let out = output(&mut s.pinode(&["--output", output_file.to_str().unwrap()]));
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    only_error_line(&out, &["pinode has no host key for kube1"]);
    assert!(!output_file.exists());
}

/// A profile of cluster `c` with one server `s`, no node reachable: for the failures that
/// come before or instead of a connection.
fn one_server() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let profile = dir.path().join("p.yaml");
    std::fs::write(
        &profile,
        profile_yaml(
            "",
            "",
            "cluster:\n  name: c\nnodes:\n  - hostname: s\n    role: server\n",
        ),
    )
    .unwrap();
    (dir, profile)
}

#[test]
fn bad_command_lines_are_usage_errors() {
    let (dir, profile) = one_server();
    usage_errors(
        || {
            let mut c = pinode();
            c.env("PINODE_STATE_DIR", dir.path().join("state"))
                .args(["kubeconfig", "--profile"])
                .arg(&profile);
            c
        },
        &[
            vec!["--address", "s=not-an-ip:22", "--merge"],
            vec!["--address", "nobody=127.0.0.1", "--merge"],
            vec!["--context", "", "--merge"],
            vec!["--context", "a\nb", "--merge"],
            vec![],
        ],
    );
}

/// What ssh prints is read within bounds: a flood on stderr does not stall the run, a
/// flood on stdout is stopped at the kubeconfig limit, each with one error line. A stand-in
/// `ssh` first on PATH plays the client.
#[test]
fn floods_from_ssh_are_bounded() {
    let (dir, profile) = one_server();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let attempt = |script: &str| {
        std::fs::write(bin.join("ssh"), format!("#!/bin/sh\n{script}\n")).unwrap();
        run(Command::new("chmod").arg("755").arg(bin.join("ssh")));
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        run_within(
            pinode()
                .env("PATH", path)
                .env("PINODE_STATE_DIR", dir.path().join("state"))
                .args(["kubeconfig", "--merge", "--profile"])
                .arg(&profile)
                .env("KUBECONFIG", dir.path().join("kubeconfig")),
            Duration::from_secs(30),
            "pinode kubeconfig",
        )
        .0
    };
    let out = attempt(
        "head -c 3000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo 'ssh: connect to host s.local port 22: No route to host' >&2; exit 255",
    );
    let line = only_error_line(&out, &["cannot reach s at s.local", "No route to host"]);
    assert!(line.len() < 400, "{line}");
    // One endless line: quoted shortened.
    let out = attempt("head -c 3000000 /dev/zero | tr '\\0' y >&2; exit 255");
    let line = only_error_line(&out, &["cannot reach s", "yyy"]);
    assert!(line.chars().count() < 400, "{} characters", line.len());
    let out = attempt("head -c 5000000 /dev/zero | tr '\\0' x");
    only_error_line(&out, &["sent more than 4194304 bytes"]);
    assert!(!dir.path().join("kubeconfig").exists());
}

/// `sudo pinode kubeconfig --merge`: ssh runs as the invoking user (their ~/.ssh key, their
/// pinode state), and the kubeconfig written is theirs (their ~/.kube/config, owned by them).
#[test]
fn under_sudo_the_invoking_users_key_state_and_kubeconfig() {
    let s = setup();
    let name = "pinodesudo";
    let home = s.path("sudo-home");
    let _ = output(Command::new("userdel").arg(name));
    run(Command::new("useradd")
        .args(["-M", "-U", "-s", "/bin/sh", "-d"])
        .arg(&home)
        .arg(name));
    struct Gone(&'static str);
    impl Drop for Gone {
        fn drop(&mut self) {
            let _ = output(Command::new("userdel").arg(self.0));
        }
    }
    let _gone = Gone(name);
    std::fs::create_dir_all(home.join(".ssh")).unwrap();
    std::fs::copy(s.path("client"), home.join(".ssh/id_ed25519")).unwrap();
    std::fs::create_dir_all(home.join(".local/state/pinode")).unwrap();
    run(Command::new("cp")
        .arg("-a")
        .arg(s.path("state/clusters"))
        .arg(home.join(".local/state/pinode/")));
    run(Command::new("chown")
        .args(["-R", &format!("{name}:{name}")])
        .arg(&home));
    chmod(&home.join(".ssh/id_ed25519"), "600");
    let id = |flag: &str| -> u32 {
        run(Command::new("id").arg(flag).arg(name))
            .trim()
            .parse()
            .unwrap()
    };
    let (uid, gid) = (id("-u"), id("-g"));
    let mut c = pinode();
    sudo_env(&mut c, name, uid, gid);
    c.env_remove("PINODE_STATE_DIR")
        .env_remove("KUBECONFIG")
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("XDG_STATE_HOME")
        .args(["kubeconfig", "--merge", "--profile"])
        .arg(s.path("lab.yaml"))
        .arg("--address")
        .arg(format!("kube1=127.0.0.1:{}", s.port));
    let out = output(&mut c);
    assert!(out.status.success(), "{}", both(&out));
    let config = home.join(".kube/config");
    use std::os::unix::fs::MetadataExt;
    for path in [home.join(".kube"), config.clone()] {
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid), "{}", path.display());
    }
    assert_eq!(mode(&config), 0o600);
    assert_eq!(yaml(&config)["current-context"].as_str(), Some("lab"));

    // The user's own ssh config cannot add a way to trust a key: with pinode's known_hosts
    // emptied, a KnownHostsCommand that prints the node's very key is not listened to.
    let known = home.join(".local/state/pinode/clusters/lab/known_hosts");
    let line = std::fs::read_to_string(&known).unwrap();
    let key_line = line.lines().find(|l| l.starts_with("kube1 ")).unwrap();
    let printer = home.join("print-known-host");
    std::fs::write(&printer, format!("#!/bin/sh\necho '{key_line}'\n")).unwrap();
    chmod(&printer, "755");
    std::fs::write(
        home.join(".ssh/config"),
        format!("KnownHostsCommand {}\n", printer.display()),
    )
    .unwrap();
    std::fs::write(&known, "").unwrap();
    run(Command::new("chown")
        .args(["-R", &format!("{name}:{name}")])
        .arg(&home));
    let out = output(&mut c);
    assert_eq!(out.status.code(), Some(1), "{}", both(&out));
    only_error_line(&out, &["pinode has no host key for kube1"]);
}
