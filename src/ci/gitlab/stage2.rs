//! GitLab Runner's part of the second first-boot stage: the runner's manifest and token on
//! the boot partition, and the function that places them, with the token in a Secret, in
//! the distribution's auto-applied manifests on the first server.

use super::{runner_manifest, runner_token_file};
use crate::bootfs::content::BootFile;
use crate::ci::{CiError, Runner, RunnerGlue};
use crate::engine::stage2::{AutoManifests, StageContext, fill};

/// The runner's manifest, in the distribution's manifest directory on the boot partition.
const MANIFEST: &str = "pinode-gitlab-runner.yaml";
/// The runner token's name among the stage's secrets.
const TOKEN: &str = "runner-token";

const INSTALL_LINES: &str = r##"	if [ -f "$boot/@MANIFEST@" ]; then
		install -m 600 "$boot/@MANIFEST@" @NODE_MANIFEST@ || return 1
	fi
"##;

const FUNCTIONS: &str = r##"
place_runner_manifests() {
	dir=@MANIFESTS_DIR@
	mkdir -p "$dir" || return 1
	install -m 600 @NODE_MANIFEST@ "$dir/pinode-gitlab-runner.yaml" || return 1
	token=$(base64 -w 0 <@TOKEN_FILE@) || return 1
	write_file "$dir/pinode-gitlab-runner-token.yaml" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: gitlab-runner
---
apiVersion: v1
kind: Secret
metadata:
  name: gitlab-runner-token
  namespace: gitlab-runner
type: Opaque
data:
  runner-token: $token
  runner-registration-token: \"\"
"
}
"##;

const RUN_STEPS: &str = r##"	if runner_wanted gitlab; then
		step "runner manifests" place_runner_manifests
	fi
"##;

/// The shell code every cluster node's stage carries for a GitLab runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    let paths = [
        ("@MANIFEST@", format!("{}/{MANIFEST}", manifests.boot_dir)),
        ("@NODE_MANIFEST@", format!("{}/{MANIFEST}", ctx.node_dir)),
        ("@MANIFESTS_DIR@", manifests.node_dir.to_string()),
        ("@TOKEN_FILE@", ctx.node_secret(TOKEN)),
    ];
    let paths: Vec<(&str, &str)> = paths.iter().map(|(k, v)| (*k, v.as_str())).collect();
    RunnerGlue {
        install_lines: fill(INSTALL_LINES, &paths),
        functions: fill(FUNCTIONS, &paths),
        run_steps: RUN_STEPS.to_string(),
    }
}

/// The runner's files for the boot partition.
pub(crate) fn files(
    ctx: &StageContext,
    manifests: &AutoManifests,
    runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    Ok(vec![
        BootFile {
            path: format!("{}/{MANIFEST}", manifests.boot_dir),
            contents: runner_manifest(runner.spec())?.into_bytes(),
            secret: false,
        },
        BootFile {
            path: ctx.boot_secret(TOKEN),
            contents: runner_token_file(runner)?,
            secret: true,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_goes_where_the_distribution_applies_manifests() {
        let ctx = StageContext {
            hostname: "n",
            boot_dir: "stage",
            node_dir: "/etc/stage",
            secrets_dir: "/etc/stage/secrets",
        };
        let manifests = AutoManifests {
            boot_dir: "stage/engine".into(),
            node_dir: "/var/lib/engine/manifests",
            helm_controller: true,
        };
        let glue = glue(&ctx, &manifests);
        assert!(glue.functions.contains("dir=/var/lib/engine/manifests\n"));
        assert!(glue.functions.contains("</etc/stage/secrets/runner-token"));
        assert!(
            glue.install_lines
                .contains("\"$boot/stage/engine/pinode-gitlab-runner.yaml\"")
        );
        assert!(
            glue.install_lines
                .contains(" /etc/stage/pinode-gitlab-runner.yaml ")
        );
        let code = [&glue.install_lines, &glue.functions, &glue.run_steps];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }
}
