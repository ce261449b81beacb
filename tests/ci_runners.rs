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
