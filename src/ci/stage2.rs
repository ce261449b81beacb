//! How every CI system's runner reaches the cluster through the second first-boot stage: one
//! manifest file (its charts or plain manifests, no secret in it) and one Kubernetes Secret,
//! which the founder writes itself from the root-only copies of the runner's secret files.
//! Each CI system describes its files with a [`RunnerFiles`]; the shell code is the stage's
//! one [`PLACE_RUNNER`].

use crate::bootfs::content::BootFile;
use crate::ci::{RunnerGlue, RunnerKind};
use crate::engine::stage2::{AutoManifests, StageContext, fill};

/// `place_runner`, carried once by every cluster node's stage and run on the founder for each
/// of its runners. The Secret's `data` is built from files, base64-encoded here, never from a
/// value on the boot partition. Static text: the arguments are pinode's own names and paths.
pub(crate) const PLACE_RUNNER: &str = r##"
# place_runner DIR MANIFEST NAMESPACE SECRET SECRET_MANIFEST KEY=PATH...: a runner's MANIFEST
# into DIR (which the distribution applies), and the Secret SECRET in NAMESPACE, written here
# (mode 600) from the root-only files PATH; `KEY=` is an empty value, an absent PATH is left out.
place_runner() {
	dir=$1
	manifest=$2
	namespace=$3
	secret=$4
	secret_manifest=$5
	shift 5
	mkdir -p "$dir" || return 1
	install -m 600 "$manifest" "$dir/${manifest##*/}" || return 1
	data=''
	found=''
	for pair in "$@"; do
		key=${pair%%=*}
		file=${pair#*=}
		if [ -z "$file" ]; then
			value='""'
		elif [ -f "$file" ]; then
			value=$(base64 -w 0 <"$file") || return 1
			found=yes
		else
			continue
		fi
		data="$data  $key: $value
"
	done
	if [ -z "$found" ]; then
		log "no secret for $namespace/$secret among the node's secrets"
		return 1
	fi
	write_file "$dir/$secret_manifest" 600 "apiVersion: v1
kind: Namespace
metadata:
  name: $namespace
---
apiVersion: v1
kind: Secret
metadata:
  name: $secret
  namespace: $namespace
type: Opaque
data:
$data"
}
"##;

const INSTALL_LINES: &str = r##"	if [ -f "$boot/@BOOT_MANIFEST@" ]; then
		install -m 600 "$boot/@BOOT_MANIFEST@" @NODE_MANIFEST@ || return 1
	fi
"##;

/// A runner's files: its manifest and the Secret the founder makes.
pub(crate) struct RunnerFiles {
    pub(crate) kind: RunnerKind,
    /// The manifest's file name, the same on the boot partition, in the node's stage
    /// directory and in the distribution's manifest directory.
    pub(crate) manifest: &'static str,
    /// The Secret's namespace and name, and its manifest's file name.
    pub(crate) namespace: &'static str,
    pub(crate) secret: &'static str,
    pub(crate) secret_manifest: &'static str,
    /// The Secret's `data`: (key, the secret file it comes from; "" for an empty value).
    /// A key whose file the node does not have is left out.
    pub(crate) data: &'static [(&'static str, &'static str)],
}

impl RunnerFiles {
    /// The stage's shell code for this runner: moving its manifest off the boot partition,
    /// and placing it with its Secret on a node whose `RUNNERS` names the system.
    pub(crate) fn glue(&self, ctx: &StageContext, manifests: &AutoManifests) -> RunnerGlue {
        let node_manifest = format!("{}/{}", ctx.node_dir, self.manifest);
        let install_lines = fill(
            INSTALL_LINES,
            &[
                (
                    "@BOOT_MANIFEST@",
                    &format!("{}/{}", manifests.boot_dir, self.manifest),
                ),
                ("@NODE_MANIFEST@", &node_manifest),
            ],
        );
        let pairs: Vec<String> = self
            .data
            .iter()
            .map(|(key, file)| match *file {
                "" => format!("{key}="),
                file => format!("{key}={}", ctx.node_secret(file)),
            })
            .collect();
        let kind = self.kind.as_str();
        let run_steps = format!(
            "\tif runner_wanted {kind}; then\n\t\tstep \"{kind} runner manifests\" place_runner {} {node_manifest} {} {} {} \\\n\t\t\t{}\n\tfi\n",
            manifests.node_dir,
            self.namespace,
            self.secret,
            self.secret_manifest,
            pairs.join(" \\\n\t\t\t")
        );
        RunnerGlue {
            install_lines,
            functions: String::new(),
            run_steps,
        }
    }

    /// The runner's files for the boot partition: the manifest (no secret) and each secret
    /// file (moved off the partition by the stage).
    pub(crate) fn files(
        &self,
        ctx: &StageContext,
        manifests: &AutoManifests,
        manifest: String,
        secrets: Vec<(&'static str, Vec<u8>)>,
    ) -> Vec<BootFile> {
        let mut files = vec![BootFile {
            path: format!("{}/{}", manifests.boot_dir, self.manifest),
            contents: manifest.into_bytes(),
            secret: false,
        }];
        files.extend(secrets.into_iter().map(|(name, contents)| BootFile {
            path: ctx.boot_secret(name),
            contents,
            secret: true,
        }));
        files
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILES: RunnerFiles = RunnerFiles {
        kind: RunnerKind::Gitlab,
        manifest: "pinode-x.yaml",
        namespace: "x-ns",
        secret: "x-secret",
        secret_manifest: "pinode-x-secret.yaml",
        data: &[("token", "x-token"), ("empty", "")],
    };

    fn manifests() -> AutoManifests {
        AutoManifests {
            boot_dir: "stage/engine".into(),
            node_dir: "/var/lib/engine/manifests",
            helm_controller: true,
        }
    }

    #[test]
    fn the_glue_places_the_manifest_where_the_distribution_applies_manifests() {
        let glue = FILES.glue(&StageContext::for_test(), &manifests());
        assert!(glue.install_lines.contains(
            "install -m 600 \"$boot/stage/engine/pinode-x.yaml\" /etc/stage/pinode-x.yaml "
        ));
        assert!(
            glue.run_steps
                .starts_with("\tif runner_wanted gitlab; then\n")
        );
        assert!(glue.run_steps.contains(
            "place_runner /var/lib/engine/manifests /etc/stage/pinode-x.yaml x-ns x-secret pinode-x-secret.yaml"
        ));
        assert!(glue.run_steps.contains("token=/etc/stage/secrets/x-token"));
        assert!(glue.run_steps.contains("empty= \\") || glue.run_steps.contains("empty=\n"));
        let code = [&glue.install_lines, &glue.run_steps];
        assert!(
            code.iter().all(|c| !c.contains('@')),
            "a placeholder is left"
        );
    }

    /// place_runner, run with sh: the Secret's data from the files present, base64, mode 600.
    #[test]
    fn place_runner_writes_the_secret_from_the_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("m.yaml"), "kind: HelmChart\n").unwrap();
        std::fs::write(d.join("tok"), "s3cr'et $(x)").unwrap();
        let script = format!(
            "log() {{ echo \"$*\" >&2; }}\nwrite_file() {{ mkdir -p \"$(dirname \"$1\")\" && (umask 077 && printf '%s' \"$3\" >\"$1\") && chmod \"$2\" \"$1\"; }}\n{PLACE_RUNNER}\nplace_runner {d}/out {d}/m.yaml ns sec s.yaml token={d}/tok missing={d}/nope empty=",
            d = d.display()
        );
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let secret = std::fs::read_to_string(d.join("out/s.yaml")).unwrap();
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&secret)
            .map(|doc| serde::Deserialize::deserialize(doc).unwrap())
            .collect();
        assert_eq!(docs[0]["kind"], "Namespace");
        assert_eq!(docs[1]["metadata"]["name"], "sec");
        assert_eq!(docs[1]["metadata"]["namespace"], "ns");
        let data = docs[1]["data"].as_mapping().unwrap();
        assert_eq!(data.len(), 2, "{secret}");
        use base64::Engine;
        let token = base64::engine::general_purpose::STANDARD
            .decode(docs[1]["data"]["token"].as_str().unwrap())
            .unwrap();
        assert_eq!(token, b"s3cr'et $(x)");
        assert_eq!(docs[1]["data"]["empty"], "");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.join("out/s.yaml"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(d.join("out/m.yaml").exists());
        // No secret file at all: a failed step, with the reason.
        std::fs::remove_file(d.join("tok")).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("no secret for ns/sec"));
    }
}
