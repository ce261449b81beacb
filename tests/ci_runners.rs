//! What every CI system shares: `cluster.runner` as one mapping or a list, at most one runner
//! per CI system, a setting of another system refused by name at its line, the stage that
//! names the founder's runners (`RUNNERS`) and, on every node of a cluster with a rootless
//! BuildKit runner, checks that the kernel allows user namespaces (run here with sh, the
//! kernel's files replaced by the test's).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::user_env::*;
use common::*;

const HEAD: &str = "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  token_env: K3S_TOKEN
";

const NODES: &str = "nodes:
  - hostname: lab-1
    role: server
  - hostname: lab-2
    role: agent
";

fn profile(env: &UserEnv, name: &str, runner: &str) -> PathBuf {
    write_profile(env.dir.path(), name, &format!("{HEAD}{runner}{NODES}"))
}

fn check(env: &UserEnv, path: &Path) -> (bool, String) {
    let out = output(env.pinode().args(["profile", "check"]).arg(path));
    (out.status.success(), stderr(&out))
}

#[test]
fn a_list_of_runners_is_checked_item_by_item_at_its_lines() {
    let env = UserEnv::new();
    let path = profile(
        &env,
        "list.yaml",
        "  runner:
    - kind: gitlab
      url: https://gitlab.example.com
      token_env: GITLAB_RUNNER_TOKEN
      app_id: 12
    - kind: gitlab
      url: https://gitlab.example.com
      token_env: GITLAB_RUNNER_TOKEN
      urll: https://gitlab.example.com
",
    );
    let (ok, err) = check(&env, &path);
    assert!(!ok);
    for want in [
        "list.yaml:15:15: cluster.runner[0].app_id: `app_id` is a setting of kind github, not of gitlab",
        "list.yaml:16:13: cluster.runner[1].kind: a second gitlab runner",
        "list.yaml:19:7: cluster.runner[1].urll: unknown field `urll`",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    assert!(err.contains("did you mean `url`?"), "{err}");
    // One runner as a mapping: the same checks, at `cluster.runner.*`.
    let path = profile(
        &env,
        "one.yaml",
        "  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
    storage_size: 8Gi
",
    );
    let (ok, err) = check(&env, &path);
    assert!(!ok);
    assert!(
        err.contains("one.yaml:15:19: cluster.runner.storage_size: `storage_size` is a setting of kind jenkins, not of gitlab"),
        "{err}"
    );
    // Not a mapping or a list.
    let path = profile(&env, "word.yaml", "  runner: gitlab\n");
    let (ok, err) = check(&env, &path);
    assert!(!ok);
    assert!(
        err.contains("cluster.runner")
            && err.contains("a runner (a mapping with `kind`) or a list of runners"),
        "{err}"
    );
}

#[test]
fn the_stage_names_the_founders_runners_and_every_node_checks_user_namespaces() {
    let env = UserEnv::new();
    let path = profile(
        &env,
        "stage.yaml",
        "  runner:
    - kind: gitlab
      url: https://gitlab.example.com
      token_env: GITLAB_RUNNER_TOKEN
",
    );
    let founder = env.render(&path, "lab-1", "bookworm");
    let agent = env.render(&path, "lab-2", "bookworm");
    let founder = std::fs::read_to_string(founder.join("boot/pinode/firstboot.sh")).unwrap();
    let agent = std::fs::read_to_string(agent.join("boot/pinode/firstboot.sh")).unwrap();
    assert!(founder.contains("RUNNERS=gitlab\n"), "founder");
    assert!(agent.contains("RUNNERS=''\n"), "agent");
    for stage in [&founder, &agent] {
        assert!(stage.contains("ROOTLESS_BUILDS=yes\n"));
        assert!(stage.contains("\tif [ \"$ROOTLESS_BUILDS\" = yes ]; then\n\t\tcheck_userns\n"));
    }
    // runner_wanted and check_userns, run: the stage's own functions, with the kernel's
    // files under a directory of the test's.
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    std::fs::create_dir_all(sys.join("kernel")).unwrap();
    std::fs::create_dir_all(sys.join("user")).unwrap();
    let function = |name: &str| -> String {
        let start = founder.find(&format!("\n{name}() {{\n")).unwrap();
        let end = founder[start..].find("\n}\n").unwrap();
        founder[start..start + end + 3].to_string()
    };
    let program = format!(
        "log() {{ printf 'log: %s\\n' \"$*\"; }}\nWARNINGS=''\n{}\n{}\n{}\ncheck_userns\nprintf '%s' \"$WARNINGS\"\nRUNNERS='gitlab jenkins'\nrunner_wanted jenkins && echo wants-jenkins\nrunner_wanted github || echo no-github\nrunner_wanted jenk || echo no-prefix\n",
        function("warn"),
        function("runner_wanted"),
        function("check_userns").replace("/proc/sys/", &format!("{}/", sys.display())),
    );
    let cases = [
        ("1", "15000", "0", None),
        (
            "0",
            "15000",
            "0",
            Some("kernel.unprivileged_userns_clone is 0"),
        ),
        ("1", "0", "0", Some("user.max_user_namespaces is 0")),
        (
            "1",
            "15000",
            "1",
            Some("kernel.apparmor_restrict_unprivileged_userns is 1"),
        ),
    ];
    for (clone, max, apparmor, warning) in cases {
        std::fs::write(sys.join("kernel/unprivileged_userns_clone"), clone).unwrap();
        std::fs::write(sys.join("user/max_user_namespaces"), max).unwrap();
        std::fs::write(
            sys.join("kernel/apparmor_restrict_unprivileged_userns"),
            apparmor,
        )
        .unwrap();
        let out = run(Command::new("sh").arg("-c").arg(&program));
        assert!(
            out.contains("wants-jenkins\nno-github\nno-prefix\n"),
            "{out}"
        );
        match warning {
            None => {
                assert!(out.contains("user namespaces allowed"), "{out}");
                assert!(!out.contains("warning:"), "{out}");
            }
            Some(why) => {
                let line =
                    format!("warning: rootless BuildKit jobs cannot run on this node: {why}");
                assert_eq!(
                    out.matches(&line).count(),
                    2,
                    "logged and kept for the status file: {out}"
                );
            }
        }
    }
    // Without a BuildKit runner, nobody checks.
    let path = profile(
        &env,
        "kaniko.yaml",
        "  runner:
    kind: gitlab
    url: https://gitlab.example.com
    token_env: GITLAB_RUNNER_TOKEN
    builds: kaniko
",
    );
    let out = env.render(&path, "lab-2", "bookworm");
    let stage = std::fs::read_to_string(out.join("boot/pinode/firstboot.sh")).unwrap();
    assert!(stage.contains("ROOTLESS_BUILDS=no\n"));
}

const JENKINS_PASSWORD: &str = "jenkins-Admin-pass-0123456789";
const GITHUB_KEY: &str = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpQIBAAKCAQEAallfourkeybytesforpinodeonly0123456789\nabcdefghijklmnopqrstuvwxyzABCDEF\n-----END RSA PRIVATE KEY-----\n";
const FORGEJO_TOKEN: &str = "0123456789abcdef0123456789abcdeffedcba98";

/// The four CI systems on one cluster: each runner's files on the founder, every secret only
/// in its own secret file (never in a manifest or any other file of the boot partition),
/// `profile check` naming each runner, and the warnings where a volume would find no default
/// StorageClass.
fn all_four(env: &UserEnv, distribution: &str) -> PathBuf {
    let key = env.dir.path().join("github-app.pem");
    std::fs::write(&key, GITHUB_KEY).unwrap();
    let runners = format!(
        "  distribution: {distribution}
  runner:
    - kind: gitlab
      url: https://gitlab.example.com
      token_env: GITLAB_RUNNER_TOKEN
    - kind: jenkins
      admin_password_env: JENKINS_PASSWORD
    - kind: github
      url: https://github.com/example
      app_id: 123456
      installation_id: 7890123
      private_key_file: {}
    - kind: forgejo
      url: https://forgejo.example.com
      token_env: FORGEJO_TOKEN
      builds: dind
      privileged: true
",
        key.display()
    );
    profile(env, &format!("four-{distribution}.yaml"), &runners)
}

fn with_secrets(env: &UserEnv) -> Command {
    let mut c = env.pinode();
    c.env("JENKINS_PASSWORD", JENKINS_PASSWORD)
        .env("FORGEJO_TOKEN", FORGEJO_TOKEN)
        .env("KUBEADM_TOKEN", "abcdef.0123456789abcdef");
    c
}

#[test]
fn four_ci_systems_on_one_cluster_keep_every_secret_in_its_own_file() {
    let env = UserEnv::new();
    let path = all_four(&env, "k3s");
    let said = run(with_secrets(&env).args(["profile", "check"]).arg(&path));
    for line in [
        "runner: GitLab Runner for https://gitlab.example.com, builds buildkit, chart gitlab-runner 0.86.0 from lab-1",
        "runner: Jenkins, builds buildkit, chart jenkins 5.9.53 from lab-1",
        "runner: GitHub Actions Runner Controller for https://github.com/example, builds buildkit",
        "runner: Forgejo runner for https://forgejo.example.com, builds dind (privileged), runner image 12.0.1",
    ] {
        assert!(said.contains(line), "missing {line:?} in:\n{said}");
    }
    let out = env.dir.path().join("four-out");
    run(with_secrets(&env)
        .args(["render", "--profile"])
        .arg(&path)
        .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
        .arg(&out));
    let boot = out.join("boot");
    let manifests: Vec<String> = std::fs::read_dir(boot.join("pinode/k3s"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("pinode-"))
        .collect();
    let mut manifests = manifests;
    manifests.sort();
    assert_eq!(
        manifests,
        [
            "pinode-forgejo-runner.yaml",
            "pinode-github-arc.yaml",
            "pinode-gitlab-runner.yaml",
            "pinode-jenkins.yaml"
        ]
    );
    for manifest in &manifests {
        common::ci::validate_manifest(&boot.join("pinode/k3s").join(manifest));
    }
    let key_body = "MIIEpQIBAAKCAQEAallfourkeybytesforpinodeonly0123456789";
    let secrets = [
        ("runner-token", user_env::RUNNER_TOKEN),
        ("jenkins-admin-password", JENKINS_PASSWORD),
        ("github-app-private-key", key_body),
        ("forgejo-runner-token", FORGEJO_TOKEN),
    ];
    for file in walk(&boot) {
        let bytes = std::fs::read(&file).unwrap();
        for (name, secret) in secrets {
            let has = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert_eq!(
                has,
                file.ends_with(format!("pinode/secrets/{name}")),
                "{name} in {}",
                file.display()
            );
        }
    }
    // One example pipeline per runner.
    for example in [
        "gitlab-ci-buildkit.yml",
        "Jenkinsfile.buildkit",
        "github-workflow-buildkit.yml",
        "forgejo-workflow-dind.yml",
    ] {
        assert!(out.join(example).exists(), "{example}");
    }
    // The stage knows the founder's four runners.
    let stage = std::fs::read_to_string(boot.join("pinode/firstboot.sh")).unwrap();
    assert!(
        stage.contains("RUNNERS='gitlab jenkins github forgejo'\n"),
        "RUNNERS"
    );
    // On kubeadm, every runner with a volume is warned about: no default StorageClass.
    let path = all_four(&env, "kubeadm");
    let said = stderr(&output(
        with_secrets(&env)
            .env("K3S_TOKEN", "abcdef.0123456789abcdef")
            .args(["profile", "check"])
            .arg(&path),
    ));
    assert!(
        said.contains(
            "cluster.runner[1].storage_class: kubeadm clusters have no default StorageClass"
        ),
        "{said}"
    );
    assert!(
        said.contains("cluster.runner[3].kind: the Forgejo runner keeps its registration on a volume of the default StorageClass"),
        "{said}"
    );
}

/// profiles/ci.yaml, the example with all four CI systems, passes `profile check --strict`
/// with its secrets given, and its founder renders each runner's manifest and example.
#[test]
fn the_ci_example_profile_checks_strictly_and_renders() {
    let env = UserEnv::new();
    let pem = env.dir.path().join("home/.config/pinode/github-app.pem");
    std::fs::create_dir_all(pem.parent().unwrap()).unwrap();
    std::fs::write(&pem, GITHUB_KEY).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pem, std::fs::Permissions::from_mode(0o600)).unwrap();
    let profile = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("profiles/ci.yaml");
    let with = |c: &mut Command| {
        c.env("JENKINS_ADMIN_PASSWORD", JENKINS_PASSWORD)
            .env("FORGEJO_RUNNER_TOKEN", FORGEJO_TOKEN);
    };
    let mut check = env.pinode();
    with(&mut check);
    let out = output(check.args(["profile", "check", "--strict"]).arg(&profile));
    assert!(out.status.success(), "{}", stderr(&out));
    let rendered = env.dir.path().join("ci-example");
    let mut render = env.pinode();
    with(&mut render);
    run(render
        .args(["render", "--profile"])
        .arg(&profile)
        .args(["--node", "forge-1", "--generation", "bookworm", "--out-dir"])
        .arg(&rendered));
    for file in [
        "boot/pinode/k3s/pinode-gitlab-runner.yaml",
        "boot/pinode/k3s/pinode-jenkins.yaml",
        "boot/pinode/k3s/pinode-github-arc.yaml",
        "boot/pinode/k3s/pinode-forgejo-runner.yaml",
        "gitlab-ci-buildkit.yml",
        "Jenkinsfile.kaniko",
        "github-workflow-buildkit.yml",
        "forgejo-workflow-buildkit.yml",
    ] {
        assert!(rendered.join(file).exists(), "{file}");
    }
}

/// What would leak or silently do nothing is refused: credentials in a runner's URL (they
/// would land in a manifest on the boot partition), an empty runner list, a Forgejo version
/// that is no image tag; and GitLab's rootless BuildKit on kubeadm is warned about (CRI-O
/// confines pods that name no seccomp profile).
#[test]
fn credentials_in_urls_and_empty_lists_are_refused() {
    let env = UserEnv::new();
    for (name, runner, line, field, says) in [
        (
            "gitlab-userinfo.yaml",
            "  runner:\n    kind: gitlab\n    url: https://bot:hunter2@gitlab.example.com\n    token_env: GITLAB_RUNNER_TOKEN\n",
            13,
            "cluster.runner.url",
            "the URL carries a user name or password",
        ),
        (
            "forgejo-userinfo.yaml",
            "  runner:\n    kind: forgejo\n    url: https://bot:hunter2@forgejo.example.com/\n    token_env: GITLAB_RUNNER_TOKEN\n",
            13,
            "cluster.runner.url",
            "the URL carries a user name or password",
        ),
        (
            "empty.yaml",
            "  runner: []\n",
            11,
            "cluster.runner",
            "an empty list installs no runner",
        ),
        (
            "forgejo-plus.yaml",
            "  runner:\n    kind: forgejo\n    url: https://forgejo.example.com\n    token_env: GITLAB_RUNNER_TOKEN\n    chart_version: 12.0.1+build\n",
            15,
            "cluster.runner.chart_version",
            "cannot contain `+`",
        ),
    ] {
        let path = profile(&env, name, runner);
        let (ok, err) = check(&env, &path);
        assert!(!ok, "{name}");
        assert!(
            err.contains(&format!("{name}:{line}:")) && err.contains(field) && err.contains(says),
            "{name}: {err}"
        );
        assert!(
            !err.contains("hunter2"),
            "{name}: the password is echoed: {err}"
        );
    }
    let path = write_profile(
        env.dir.path(),
        "gitlab-kubeadm.yaml",
        &format!(
            "{}  distribution: kubeadm\n  runner:\n    kind: gitlab\n    url: https://gitlab.example.com\n    token_env: GITLAB_RUNNER_TOKEN\n{NODES}",
            HEAD
        ),
    );
    let (_, err) = check(&env, &path);
    assert!(err.contains("seccomp_use_default_when_empty"), "{err}");
}
