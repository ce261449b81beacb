//! Jenkins's part of the second first-boot stage: the HelmChart on the boot partition, the
//! administrator's name and password as secret files, and the function that places the chart
//! and writes the Secret `jenkins-admin` (mode 600) in the distribution's auto-applied
//! manifests on the first server.

use super::{manifest, password_file};
use crate::bootfs::content::BootFile;
use crate::ci::{CiError, Runner, RunnerGlue};
use crate::engine::stage2::{AutoManifests, StageContext, fill};

/// The chart's manifest, in the distribution's manifest directory on the boot partition.
const MANIFEST: &str = "pinode-jenkins.yaml";
/// The administrator's password and name among the stage's secrets (the name is no secret,
/// but travels the same way so that the Secret is written from files alone).
const PASSWORD: &str = "jenkins-admin-password";
const USER: &str = "jenkins-admin-user";

const INSTALL_LINES: &str = r##"	if [ -f "$boot/@MANIFEST@" ]; then
		install -m 600 "$boot/@MANIFEST@" @NODE_MANIFEST@ || return 1
	fi
"##;

const FUNCTIONS: &str = r##"
place_jenkins_manifests() {
	dir=@MANIFESTS_DIR@
	mkdir -p "$dir" || return 1
	install -m 600 @NODE_MANIFEST@ "$dir/pinode-jenkins.yaml" || return 1
	jenkins_user=$(base64 -w 0 <@USER_FILE@) || return 1
	jenkins_password=$(base64 -w 0 <@PASSWORD_FILE@) || return 1
	write_file "$dir/pinode-jenkins-admin.yaml" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: jenkins
---
apiVersion: v1
kind: Secret
metadata:
  name: jenkins-admin
  namespace: jenkins
type: Opaque
data:
  jenkins-admin-user: $jenkins_user
  jenkins-admin-password: $jenkins_password
"
}
"##;

const RUN_STEPS: &str = r##"	if runner_wanted jenkins; then
		step "jenkins manifests" place_jenkins_manifests
	fi
"##;

/// The shell code every cluster node's stage carries for a Jenkins runner.
pub(crate) fn glue(ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
    let paths = [
        ("@MANIFEST@", format!("{}/{MANIFEST}", manifests.boot_dir)),
        ("@NODE_MANIFEST@", format!("{}/{MANIFEST}", ctx.node_dir)),
        ("@MANIFESTS_DIR@", manifests.node_dir.to_string()),
        ("@USER_FILE@", ctx.node_secret(USER)),
        ("@PASSWORD_FILE@", ctx.node_secret(PASSWORD)),
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
            contents: manifest(runner.spec())?.into_bytes(),
            secret: false,
        },
        BootFile {
            path: ctx.boot_secret(USER),
            contents: super::admin_user(runner.spec()).as_bytes().to_vec(),
            secret: true,
        },
        BootFile {
            path: ctx.boot_secret(PASSWORD),
            contents: password_file(runner)?,
            secret: true,
        },
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_goes_where_the_distribution_applies_manifests() {
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
        assert!(
            glue.functions
                .contains("</etc/stage/secrets/jenkins-admin-password")
        );
        assert!(
            glue.functions
                .contains("</etc/stage/secrets/jenkins-admin-user")
        );
        assert!(glue.run_steps.contains("runner_wanted jenkins"));
        let code = [&glue.install_lines, &glue.functions, &glue.run_steps];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }
}
