//! One profile key chooses the distribution (`cluster.distribution`), and what does not
//! depend on it keeps working: `profile check` names the distribution, its version and how
//! the nodes join; combinations that cannot work are refused with the reason (MicroK8s where
//! the OS has no snapd, another distribution's settings); the runner is the same HelmChart
//! on every distribution, with helm-controller deployed by the founder where the
//! distribution has none (validated against Kubernetes' schemas by `kubernetes-validate`).

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::user_env::*;
use common::*;

const HEAD: &str = "version: 1
os:
  image: IMAGE
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
";

/// A founder with a static address and the runner, and an agent.
fn cluster(distribution: &str, token_env: &str) -> String {
    format!(
        "cluster:
  name: lab
  distribution: {distribution}
  token_env: {token_env}
  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
  - hostname: lab-2
    role: agent
"
    )
}

const KUBEADM_TOKEN: &str = "abcdef.0123456789abcdef";
const MICROK8S_TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn write(env: &UserEnv, name: &str, image: &str, body: &str) -> PathBuf {
    write_profile(
        env.dir.path(),
        name,
        &format!("{}{body}", HEAD.replace("IMAGE", image)),
    )
}

fn pinode_with_tokens(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("KUBEADM_TOKEN", KUBEADM_TOKEN)
        .env("MICROK8S_TOKEN", MICROK8S_TOKEN)
        .env(
            "GITLAB_RUNNER_TOKEN",
            "glrt-example_runner-token-0123456789",
        );
    c
}

#[test]
fn profile_check_names_distribution_version_and_join() {
    let env = UserEnv::new();
    let cases = [
        (
            "k3s",
            "raspios-lite-arm64",
            "K3S_TOKEN",
            &["k3s: channel stable", "join: the K3s cluster token"][..],
            "joins https://192.168.1.10:6443",
        ),
        (
            "microk8s",
            "ubuntu-server-24.04-arm64",
            "MICROK8S_TOKEN",
            &["microk8s: ", "1.33/stable", "join: a MicroK8s join token"][..],
            "joins 192.168.1.10:25000 (the founder's cluster agent)",
        ),
        (
            "kubeadm",
            "raspios-lite-arm64",
            "KUBEADM_TOKEN",
            &["kubeadm: Kubernetes v1.33 with CRI-O", "caCertHashes"][..],
            "joins https://192.168.1.10:6443",
        ),
    ];
    for (distribution, image, token, lines, join) in cases {
        let profile = write(
            &env,
            &format!("{distribution}.yaml"),
            image,
            &cluster(distribution, token),
        );
        let out = output(
            pinode_with_tokens(&env)
                .args(["profile", "check"])
                .arg(&profile),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{distribution}: {}", stderr(&out));
        for line in lines {
            assert!(text.contains(line), "{distribution}: {line:?} in\n{text}");
        }
        let founder = text
            .lines()
            .find(|l| l.trim_start().starts_with("lab-1 "))
            .unwrap_or("");
        let agent = text
            .lines()
            .find(|l| l.trim_start().starts_with("lab-2 "))
            .unwrap_or("");
        assert!(
            founder.contains(&format!("{distribution} server")),
            "{founder}"
        );
        assert!(
            agent.contains(&format!("{distribution} agent")) && agent.contains(join),
            "{distribution}: {agent}"
        );
    }
}

#[test]
fn combinations_that_cannot_work_are_refused_with_the_reason() {
    let env = UserEnv::new();
    // MicroK8s is a snap: Raspberry Pi OS ships no snapd.
    let pi_os = write(
        &env,
        "mk-pios.yaml",
        "raspios-lite-arm64",
        &cluster("microk8s", "MICROK8S_TOKEN"),
    );
    let out = output(
        pinode_with_tokens(&env)
            .args(["profile", "check"])
            .arg(&pi_os),
    );
    let line = one_error_line(&out, &["cluster.distribution", "snapd"]);
    assert!(line.contains("ubuntu-server-24.04-arm64"), "{line}");
    // Ubuntu has only cloud-init.
    let firstrun = write_profile(
        env.dir.path(),
        "mk-firstrun.yaml",
        &format!(
            "{}{}",
            HEAD.replace("IMAGE", "ubuntu-server-24.04-arm64\n  init: firstrun"),
            cluster("microk8s", "MICROK8S_TOKEN")
        ),
    );
    let out = output(
        pinode_with_tokens(&env)
            .args(["profile", "check"])
            .arg(&firstrun),
    );
    one_error_line(&out, &["os.init", "cloud-init"]);
    // Another distribution's settings would be ignored.
    let stray = write(
        &env,
        "stray.yaml",
        "raspios-lite-arm64",
        &cluster("kubeadm", "KUBEADM_TOKEN")
            .replace("  runner:", "  k3s:\n    channel: stable\n  runner:"),
    );
    let out = output(
        pinode_with_tokens(&env)
            .args(["profile", "check"])
            .arg(&stray),
    );
    one_error_line(&out, &["cluster.k3s", "cluster.distribution is kubeadm"]);
    // A token of another distribution's form.
    let k3s_token = write(
        &env,
        "k3s-token.yaml",
        "raspios-lite-arm64",
        &cluster("kubeadm", "K3S_TOKEN"),
    );
    let out = output(
        pinode_with_tokens(&env)
            .args(["render", "--profile"])
            .arg(&k3s_token)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("k3s-token-out")),
    );
    one_error_line(&out, &["cluster.token_env"]);
    // The image decides too: a MicroK8s profile prepared from a Raspberry Pi OS image (here
    // given by file, so the profile check cannot know) is refused, and nothing is written.
    let image = copy_fixture("bookworm", env.dir.path());
    let by_file = write(
        &env,
        "mk-file.yaml",
        &image.display().to_string(),
        &cluster("microk8s", "MICROK8S_TOKEN"),
    );
    let out_dir = env.dir.path().join("prepared");
    let out = output(
        pinode_with_tokens(&env)
            .args(["prepare", "--profile"])
            .arg(&by_file)
            .arg("--out-dir")
            .arg(&out_dir),
    );
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("MicroK8s is installed as a snap")
            && err.contains("Raspberry Pi OS bookworm has no snapd"),
        "{err}"
    );
    let written: Vec<_> = std::fs::read_dir(&out_dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(written.is_empty(), "{written:?}");
}

#[test]
fn a_microk8s_founder_without_an_address_is_a_warning() {
    let env = UserEnv::new();
    let text = cluster("microk8s", "MICROK8S_TOKEN").replace(
        "    network:\n      ethernet:\n        ipv4: 192.168.1.10/24\n        gateway: 192.168.1.1\n",
        "",
    );
    let profile = write(&env, "mdns.yaml", "ubuntu-server-24.04-arm64", &text);
    let out = output(
        pinode_with_tokens(&env)
            .args(["profile", "check"])
            .arg(&profile),
    );
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("warning") && err.contains("avahi-daemon and libnss-mdns"),
        "{err}"
    );
}

/// The founder's rendered boot partition for `distribution`.
fn founder(env: &UserEnv, distribution: &str) -> PathBuf {
    let (image, token) = match distribution {
        "microk8s" => ("ubuntu-server-24.04-arm64", "MICROK8S_TOKEN"),
        "kubeadm" => ("raspios-lite-arm64", "KUBEADM_TOKEN"),
        _ => ("raspios-lite-arm64", "K3S_TOKEN"),
    };
    let profile = write(
        env,
        &format!("{distribution}-runner.yaml"),
        image,
        &cluster(distribution, token),
    );
    let mut render = pinode_with_tokens(env);
    render.args(["render", "--profile"]).arg(&profile);
    render.args(["--node", "lab-1"]);
    if distribution == "microk8s" {
        render.arg("--image").arg(fixture("ubuntu-noble"));
    } else {
        render.args(["--generation", "bookworm"]);
    }
    let out = env.dir.path().join(format!("{distribution}-founder"));
    run(render.arg("--out-dir").arg(&out));
    out.join("boot")
}

#[test]
fn the_runner_is_one_helmchart_with_helm_controller_where_the_distribution_has_none() {
    let env = UserEnv::new();
    let k3s = founder(&env, "k3s");
    assert!(files_named(&k3s, "00-pinode-helm-controller.yaml").is_empty());
    let mut charts = Vec::new();
    for distribution in ["microk8s", "kubeadm"] {
        let boot = founder(&env, distribution);
        let controller = files_named(&boot, "00-pinode-helm-controller.yaml");
        assert_eq!(controller.len(), 1, "{distribution}: {controller:?}");
        for version in ["1.33.0", "1.37.0"] {
            run(Command::new("kubernetes-validate")
                .args(["--strict", "-k", version])
                .arg(&controller[0]));
        }
        let docs = yaml_documents(&controller[0]);
        let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["image"], "rancher/helm-controller:v0.17.7");
        // The stage moves it into the manifests the founder applies, before the runner's.
        let stage = std::fs::read_to_string(boot.join("pinode/firstboot.sh")).unwrap();
        assert!(
            stage.contains("/var/lib/pinode/manifests/00-pinode-helm-controller.yaml"),
            "{distribution}"
        );
        let chart = files_named(&boot, "pinode-gitlab-runner.yaml");
        assert_eq!(chart.len(), 1, "{distribution}");
        charts.push(std::fs::read(&chart[0]).unwrap());
    }
    // The same HelmChart everywhere, K3s included.
    let k3s_chart = std::fs::read(&files_named(&k3s, "pinode-gitlab-runner.yaml")[0]).unwrap();
    assert!(charts.iter().all(|c| *c == k3s_chart));
}

#[test]
fn microk8s_server_counts_follow_dqlite_and_etcd_counts_follow_etcd() {
    let env = UserEnv::new();
    let servers = |n: usize, distribution: &str, image: &str, token: &str| {
        let mut text = cluster(distribution, token);
        for i in 0..n.saturating_sub(1) {
            text.push_str(&format!("  - hostname: extra-{i}\n    role: server\n"));
        }
        let profile = write(&env, &format!("{distribution}-{n}.yaml"), image, &text);
        let out = output(
            pinode_with_tokens(&env)
                .args(["profile", "check"])
                .arg(&profile),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let mk = |n| servers(n, "microk8s", "ubuntu-server-24.04-arm64", "MICROK8S_TOKEN");
    assert!(mk(2).contains("two MicroK8s servers are not HA"));
    assert!(mk(4).contains("4 MicroK8s servers survive no more failures than 3"));
    assert!(!mk(3).contains("MicroK8s servers"), "{}", mk(3));
    let kubeadm = servers(2, "kubeadm", "raspios-lite-arm64", "KUBEADM_TOKEN");
    assert!(
        kubeadm.contains("etcd needs a majority (2 of 2)"),
        "{kubeadm}"
    );
    // Several kubeadm servers without a VIP share the founder's address as their endpoint.
    assert!(
        kubeadm.contains("the control-plane endpoint is the first server's address"),
        "{kubeadm}"
    );
}

/// The example profiles of each new distribution are valid as shipped, and every node of them
/// renders (MicroK8s against the Ubuntu fixture).
#[test]
fn the_example_profiles_of_each_distribution_check_and_render() {
    let env = UserEnv::new();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    for (name, nodes) in [
        ("microk8s", &["mk-1", "mk-2", "worker-1"][..]),
        ("kubeadm", &["cp-1", "cp-2", "worker-1"][..]),
    ] {
        let profile = repo.join(format!("profiles/{name}.yaml"));
        let out = output(
            pinode_with_tokens(&env)
                .args(["profile", "check", "--strict"])
                .arg(&profile),
        );
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        for node in nodes {
            let rendered = env.dir.path().join(format!("example-{name}-{node}"));
            let mut render = pinode_with_tokens(&env);
            render.args(["render", "--profile"]).arg(&profile);
            render.args(["--node", node, "--out-dir"]).arg(&rendered);
            if name == "microk8s" {
                render.arg("--image").arg(fixture("ubuntu-noble"));
            } else {
                render.args(["--generation", "bookworm"]);
            }
            run(&mut render);
            let stage = rendered.join("boot/pinode/firstboot.sh");
            run(Command::new("shellcheck")
                .args(["--shell=sh", "--severity=style"])
                .arg(&stage));
        }
    }
}
