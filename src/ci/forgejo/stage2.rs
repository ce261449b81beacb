//! The Forgejo runner's part of the second first-boot stage: its manifest and registration
//! token on the boot partition, and the function that places them, the token in a Secret
//! written on the node, in the distribution's auto-applied manifests on the first server.

use super::{runner_manifest, token_file};
use crate::bootfs::content::BootFile;
use crate::ci::{CiError, Runner, RunnerGlue};
use crate::engine::stage2::{AutoManifests, StageContext, fill};

/// The runner's manifest, in the distribution's manifest directory on the boot partition.
const MANIFEST: &str = "pinode-forgejo-runner.yaml";
/// The registration token's name among the stage's secrets.
pub(crate) const TOKEN: &str = "forgejo-runner-token";

const INSTALL_LINES: &str = r##"	if [ -f "$boot/@MANIFEST@" ]; then
		install -m 600 "$boot/@MANIFEST@" @NODE_MANIFEST@ || return 1
	fi
"##;

const FUNCTIONS: &str = r##"
# place_forgejo_runner: the runner's manifests, and its registration token as a Secret
# (written here from the root-only copy, never on the boot partition).
place_forgejo_runner() {
	dir=@MANIFESTS_DIR@
	mkdir -p "$dir" || return 1
	install -m 600 @NODE_MANIFEST@ "$dir/pinode-forgejo-runner.yaml" || return 1
	token=$(base64 -w 0 <@TOKEN_FILE@) || return 1
	write_file "$dir/pinode-forgejo-runner-token.yaml" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: forgejo-runner
---
apiVersion: v1
kind: Secret
metadata:
  name: forgejo-runner-token
  namespace: forgejo-runner
type: Opaque
data:
  token: $token
"
}
"##;

const RUN_STEPS: &str = r##"	if runner_wanted forgejo; then
		step "forgejo runner manifests" place_forgejo_runner
	fi
"##;

/// The shell code every cluster node's stage carries for a Forgejo runner.
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

/// The runner's files for the boot partition: the manifest (no secret) and the token (a
/// secret file, moved off the boot partition by the stage).
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
            contents: token_file(runner)?,
            secret: true,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_runner_goes_where_the_distribution_applies_manifests() {
        let ctx = StageContext::for_test();
        let manifests = AutoManifests {
            boot_dir: "stage/engine".into(),
            node_dir: "/var/lib/engine/manifests",
            helm_controller: true,
        };
        let glue = glue(&ctx, &manifests);
        assert!(glue.functions.contains("dir=/var/lib/engine/manifests\n"));
        assert!(
            glue.functions
                .contains("</etc/stage/secrets/forgejo-runner-token)")
        );
        assert!(
            glue.install_lines
                .contains("\"$boot/stage/engine/pinode-forgejo-runner.yaml\"")
        );
        assert!(glue.run_steps.contains("runner_wanted forgejo"));
        let code = [&glue.install_lines, &glue.functions, &glue.run_steps];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }
}
