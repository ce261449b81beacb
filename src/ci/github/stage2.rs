//! GitHub Actions' part of the second first-boot stage: the HelmCharts of ARC's controller
//! and scale set on the boot partition, the credentials as secret files, and the function
//! that places the charts, with the credentials in the Secret `pinode-github` (namespace
//! `arc-runners`), in the distribution's auto-applied manifests on the first server.

use super::{manifest, secret_files};
use crate::bootfs::content::BootFile;
use crate::ci::{CiError, Runner, RunnerGlue};
use crate::engine::stage2::{AutoManifests, StageContext, fill};

/// The HelmCharts, in the distribution's manifest directory on the boot partition.
const MANIFEST: &str = "pinode-github-arc.yaml";
/// The credentials' names among the stage's secrets: a token, or a GitHub App's id,
/// installation id and private key (the ids are not secret, but belong in the same Secret).
pub(crate) const TOKEN: &str = "github-token";
pub(crate) const APP_ID: &str = "github-app-id";
pub(crate) const INSTALLATION_ID: &str = "github-app-installation-id";
pub(crate) const PRIVATE_KEY: &str = "github-app-private-key";

const INSTALL_LINES: &str = r##"	if [ -f "$boot/@MANIFEST@" ]; then
		install -m 600 "$boot/@MANIFEST@" @NODE_MANIFEST@ || return 1
	fi
"##;

const FUNCTIONS: &str = r##"
# place_github_runner: ARC's HelmCharts, and the Secret pinode-github with the credentials
# of the root-only copies present (a token, or a GitHub App's ids and private key).
place_github_runner() {
	dir=@MANIFESTS_DIR@
	mkdir -p "$dir" || return 1
	install -m 600 @NODE_MANIFEST@ "$dir/pinode-github-arc.yaml" || return 1
	data=''
	for pair in github_token=@TOKEN_FILE@ github_app_id=@APP_ID_FILE@ \
		github_app_installation_id=@INSTALLATION_ID_FILE@ github_app_private_key=@PRIVATE_KEY_FILE@; do
		file=${pair#*=}
		[ -f "$file" ] || continue
		value=$(base64 -w 0 <"$file") || return 1
		data="$data  ${pair%%=*}: $value
"
	done
	if [ -z "$data" ]; then
		log "no GitHub credentials in @SECRETS_DIR@"
		return 1
	fi
	write_file "$dir/pinode-github-secret.yaml" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: arc-runners
---
apiVersion: v1
kind: Secret
metadata:
  name: pinode-github
  namespace: arc-runners
type: Opaque
data:
$data"
}
"##;

const RUN_STEPS: &str = r##"	if runner_wanted github; then
		step "GitHub runner manifests" place_github_runner
	fi
"##;

/// The shell code every cluster node's stage carries for a GitHub runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    let paths = [
        ("@MANIFEST@", format!("{}/{MANIFEST}", manifests.boot_dir)),
        ("@NODE_MANIFEST@", format!("{}/{MANIFEST}", ctx.node_dir)),
        ("@MANIFESTS_DIR@", manifests.node_dir.to_string()),
        ("@SECRETS_DIR@", ctx.secrets_dir.to_string()),
        ("@TOKEN_FILE@", ctx.node_secret(TOKEN)),
        ("@APP_ID_FILE@", ctx.node_secret(APP_ID)),
        ("@INSTALLATION_ID_FILE@", ctx.node_secret(INSTALLATION_ID)),
        ("@PRIVATE_KEY_FILE@", ctx.node_secret(PRIVATE_KEY)),
    ];
    let paths: Vec<(&str, &str)> = paths.iter().map(|(k, v)| (*k, v.as_str())).collect();
    RunnerGlue {
        install_lines: fill(INSTALL_LINES, &paths),
        functions: fill(FUNCTIONS, &paths),
        run_steps: RUN_STEPS.to_string(),
    }
}

/// The runner's files for the boot partition: the HelmCharts (no secret) and the
/// credentials (secret files only).
pub(crate) fn files(
    ctx: &StageContext,
    manifests: &AutoManifests,
    runner: &Runner,
) -> Result<Vec<BootFile>, CiError> {
    let mut files = vec![BootFile {
        path: format!("{}/{MANIFEST}", manifests.boot_dir),
        contents: manifest(runner.spec())?.into_bytes(),
        secret: false,
    }];
    for (name, contents) in secret_files(runner)? {
        files.push(BootFile {
            path: ctx.boot_secret(name),
            contents,
            secret: true,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_filled() {
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
                .contains("github_token=/etc/stage/secrets/github-token ")
        );
        let code = [&glue.install_lines, &glue.functions, &glue.run_steps];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }
}
