//! Runner charts without a chart repository (`cluster.airgap: true`) and the registry mirror
//! (`cluster.registry_mirror`), through the real binary.
//!
//! The chart repository is a STAND-IN: a real HTTPS server on 127.0.0.1 (Python's
//! http.server behind TLS, with a CA made here and trusted through SSL_CERT_FILE) serving an
//! `index.yaml` in Helm's repository format (`apiVersion`, `entries.<chart>[].version`,
//! `urls`, `digest` = SHA-256 of the archive: helm/helm `pkg/repo/index.go`) and two small
//! stand-in chart archives named like the real ones (gitlab-runner 0.86.0, jenkins 5.9.53).
//! They are not the real charts: what is checked is that pinode embeds exactly the bytes the
//! repository serves, verified against the index, and refuses any other. The same server is
//! a STAND-IN OCI registry for GitHub's ARC charts (token challenge, manifest, blob).

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use base64::Engine as _;
use common::ci::validate_manifest;
use common::user_env::*;
use common::*;

const MIRROR: &str = "https://mirror.lan:5000";

/// The stand-in chart repository: files in `root/charts`, served over HTTPS on 127.0.0.1.
struct StandInRepo {
    dir: tempfile::TempDir,
    child: Child,
    port: u16,
}

impl Drop for StandInRepo {
    fn drop(&mut self) {
        // Only the server this test started, by its PID.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The server: files under `www` as they are; under `/v2/` a STAND-IN OCI registry that
/// wants a token (401 with a Bearer challenge, as ghcr.io answers an anonymous pull) and
/// hands one out at `/token` (the Docker registry token protocol,
/// distribution/distribution `docs/spec/auth/token.md`). Logs each path, and the
/// Authorization header of `/v2/` requests.
const SERVER: &str = r#"
import http.server, json, ssl, sys, functools
root, cert, key, log = sys.argv[1:5]
TOKEN = "stand-in-token"
class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, fmt, *args):
        pass
    def note(self, line):
        with open(log, "a") as f:
            f.write(line + "\n")
    def answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def do_GET(self):
        self.note(self.path)
        if self.path.startswith("/token?"):
            return self.answer(200, json.dumps({"token": TOKEN}).encode(), [("Content-Type", "application/json")])
        if self.path.startswith("/v2/"):
            auth = self.headers.get("Authorization")
            self.note("auth " + str(auth))
            if auth != "Bearer " + TOKEN:
                port = self.server.server_address[1]
                repo = self.path[4:].rsplit("/", 2)[0]
                challenge = 'Bearer realm="https://127.0.0.1:%d/token",service="stand-in",scope="repository:%s:pull"' % (port, repo)
                return self.answer(401, b"{}", [("WWW-Authenticate", challenge)])
        return super().do_GET()
handler = functools.partial(Handler, directory=root)
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

impl StandInRepo {
    /// A CA and a certificate for 127.0.0.1 signed by it, the stand-in charts and their
    /// index (`digest_of` may lie about a chart's digest), and the server.
    fn start(digest_of: impl Fn(&str, &str) -> String) -> StandInRepo {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let ssl = |args: &str| {
            run(Command::new("sh")
                .arg("-c")
                .arg(format!("openssl {args} 2>/dev/null"))
                .current_dir(d));
        };
        ssl(
            "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=stand-in-ca",
        );
        ssl("req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj /CN=127.0.0.1");
        std::fs::write(
            d.join("ext.cnf"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .unwrap();
        ssl(
            "x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out leaf.pem -days 2 -extfile ext.cnf",
        );
        stand_in_k3s_release(&d.join("www"));
        let charts = d.join("www/charts");
        std::fs::create_dir_all(&charts).unwrap();
        let mut entries = String::new();
        let log = d.join("requests.log");
        std::fs::write(&log, "").unwrap();
        let mut child = Command::new("python3")
            .args(["-c", SERVER])
            .arg(d.join("www"))
            .arg(d.join("leaf.pem"))
            .arg(d.join("leaf.key"))
            .arg(&log)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap();
        for (chart, version) in [("gitlab-runner", "0.86.0"), ("jenkins", "5.9.53")] {
            let archive = stand_in_chart(d, chart, version);
            let name = format!("{chart}-{version}.tgz");
            std::fs::copy(&archive, charts.join(&name)).unwrap();
            let sha = digest_of(chart, &sha256_file(&archive));
            // One relative URL (resolved against the repository) and one absolute.
            let url = if chart == "jenkins" {
                format!("https://127.0.0.1:{port}/charts/{name}")
            } else {
                name.clone()
            };
            entries.push_str(&format!(
                "  {chart}:\n  - apiVersion: v2\n    name: {chart}\n    version: {version}\n    \
                 digest: {sha}\n    urls:\n    - {url}\n  - name: {chart}\n    version: 0.0.1\n    \
                 urls: [elsewhere.tgz]\n"
            ));
        }
        std::fs::write(
            charts.join("index.yaml"),
            format!("apiVersion: v1\nentries:\n{entries}generated: \"2026-11-30T00:00:00Z\"\n"),
        )
        .unwrap();
        StandInRepo { dir, child, port }
    }

    /// ARC's two charts as STAND-IN OCI artifacts under `oci://127.0.0.1:PORT/arc`:
    /// manifest (OCI image manifest with Helm's config and chart layer media types,
    /// helm/helm `pkg/registry/constants.go`) and blobs. `layer_digest` may lie.
    fn add_oci_charts(&self, version: &str, layer_digest: impl Fn(&str) -> String) {
        let d = self.dir.path();
        for chart in ["gha-runner-scale-set-controller", "gha-runner-scale-set"] {
            let archive = stand_in_chart(d, chart, version);
            let bytes = std::fs::read(&archive).unwrap();
            let repo = d.join(format!("www/v2/arc/{chart}"));
            std::fs::create_dir_all(repo.join("manifests")).unwrap();
            std::fs::create_dir_all(repo.join("blobs")).unwrap();
            let sha = sha256(&bytes);
            // Served under the digest the manifest names (a lying registry: not its own).
            let named = layer_digest(&sha);
            std::fs::write(repo.join(format!("blobs/sha256:{named}")), &bytes).unwrap();
            let config = format!("{{\"name\":\"{chart}\",\"version\":\"{version}\"}}");
            let config_sha = sha256(config.as_bytes());
            std::fs::write(repo.join(format!("blobs/sha256:{config_sha}")), &config).unwrap();
            let manifest = serde_json::json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {
                    "mediaType": "application/vnd.cncf.helm.config.v1+json",
                    "digest": format!("sha256:{config_sha}"),
                    "size": config.len(),
                },
                "layers": [{
                    "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                    "digest": format!("sha256:{named}"),
                    "size": bytes.len(),
                }],
            });
            std::fs::write(
                repo.join(format!("manifests/{version}")),
                serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
            std::fs::copy(&archive, d.join(format!("www/{chart}-{version}.tgz"))).unwrap();
        }
    }

    fn oci(&self) -> String {
        format!("oci://127.0.0.1:{}/arc", self.port)
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/charts", self.port)
    }

    fn served(&self, chart: &str, version: &str) -> Vec<u8> {
        let www = self.dir.path().join("www");
        std::fs::read(www.join(format!("charts/{chart}-{version}.tgz")))
            .or_else(|_| std::fs::read(www.join(format!("{chart}-{version}.tgz"))))
            .unwrap()
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("requests.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

/// A STAND-IN chart archive (Chart.yaml, values.yaml, one template), made with tar.
fn stand_in_chart(dir: &Path, chart: &str, version: &str) -> PathBuf {
    let src = dir.join(format!("src-{chart}"));
    std::fs::create_dir_all(src.join(format!("{chart}/templates"))).unwrap();
    std::fs::write(
        src.join(format!("{chart}/Chart.yaml")),
        format!(
            "apiVersion: v2\nname: {chart}\nversion: {version}\n\
             description: STAND-IN chart for pinode's tests, not the real {chart}\n"
        ),
    )
    .unwrap();
    std::fs::write(src.join(format!("{chart}/values.yaml")), "replicas: 1\n").unwrap();
    std::fs::write(
        src.join(format!("{chart}/templates/cm.yaml")),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stand-in\n",
    )
    .unwrap();
    let out = dir.join(format!("{chart}-{version}.tgz"));
    run(Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(&src)
        .arg(chart));
    out
}

/// The K3s release air-gap needs (cluster.airgap places it on every card; tests/airgap.rs
/// tests that part): a STAND-IN of the release's layout, tiny, under `www/releases/TAG/`
/// with its SHA-256 list, and a stand-in install.sh at `www/install.sh`.
fn stand_in_k3s_release(www: &Path) {
    // The server decodes the URL's %2B: the directory is named by the tag itself.
    let tag = www.join("releases").join("v1.33.5+k3s1");
    std::fs::create_dir_all(&tag).unwrap();
    let files: [(&str, &[u8]); 2] = [
        (
            "k3s-arm64",
            b"#!/bin/sh\n# STAND-IN for k3s-arm64 (not K3s)\nexit 0\n",
        ),
        (
            "k3s-airgap-images-arm64.tar.zst",
            b"STAND-IN images archive",
        ),
    ];
    let mut sums = String::new();
    for (name, bytes) in files {
        std::fs::write(tag.join(name), bytes).unwrap();
        sums.push_str(&format!("{}  {name}\n", hex_sha256(bytes)));
    }
    std::fs::write(tag.join("sha256sum-arm64.txt"), sums).unwrap();
    std::fs::write(
        www.join("install.sh"),
        "#!/bin/sh\n# STAND-IN install.sh\nexit 0\n",
    )
    .unwrap();
}

fn hex_sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// `cluster.airgap` with the pinned K3s release it needs, from the stand-in server.
fn airgap(repo: &StandInRepo) -> String {
    format!(
        "  airgap: true\n  k3s:\n    version: v1.33.5+k3s1\n    release_url: {url}/releases\n    install_url: {url}/install.sh\n",
        url = repo.url().trim_end_matches("/charts").trim_end_matches('/'),
    )
}

fn profile(env: &UserEnv, name: &str, cluster_extra: &str, runners: &str) -> PathBuf {
    write_profile(
        env.dir.path(),
        name,
        &format!(
            "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  token_env: K3S_TOKEN
{cluster_extra}  runner:
{runners}nodes:
  - hostname: lab-1
    role: server
    network:
      ethernet:
        ipv4: 192.168.1.10/24
        gateway: 192.168.1.1
  - hostname: lab-2
    role: agent
"
        ),
    )
}

fn runners(repo: &str) -> String {
    format!(
        "    - kind: gitlab
      url: https://gitlab.example.com
      token_env: GITLAB_RUNNER_TOKEN
      chart_repo: {repo}
    - kind: jenkins
      admin_password_env: JENKINS_PASSWORD
      chart_repo: {repo}
"
    )
}

/// pinode with the stand-in CA trusted and a cache of the test's own.
fn pinode_with(env: &UserEnv, repo: &StandInRepo) -> Command {
    let mut c = env.pinode();
    c.env("SSL_CERT_FILE", repo.ca())
        .env("PINODE_CACHE_DIR", cache(env))
        .env("JENKINS_PASSWORD", "jenkins-admin-password-0123");
    c
}

fn cache(env: &UserEnv) -> PathBuf {
    env.dir.path().join("cache")
}

fn render(env: &UserEnv, repo: &StandInRepo, profile: &Path, node: &str, out: &str) -> Output {
    output(
        pinode_with(env, repo)
            .args(["render", "--profile"])
            .arg(profile)
            .args(["--node", node, "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join(out)),
    )
}

fn chart_doc(boot: &Path, manifest: &str) -> serde_json::Value {
    let found = files_named(boot, manifest);
    assert_eq!(found.len(), 1, "{manifest}: {found:?}");
    validate_manifest(&found[0]);
    yaml_documents(&found[0])
        .into_iter()
        .find(|d| d["kind"] == "HelmChart")
        .unwrap()
}

fn cached_files(env: &UserEnv) -> Vec<String> {
    std::fs::read_dir(cache(env).join("charts"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn airgap_embeds_the_served_chart_once_and_validates() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    let env = UserEnv::new();
    let path = profile(
        &env,
        "airgap.yaml",
        &format!("{}  registry_mirror: {MIRROR}\n", airgap(&repo)),
        &runners(&repo.url()),
    );
    let out = render(&env, &repo, &path, "lab-1", "founder");
    assert!(out.status.success(), "{}", stderr(&out));
    let boot = env.dir.path().join("founder/boot");
    for (manifest, chart, version) in [
        ("pinode-gitlab-runner.yaml", "gitlab-runner", "0.86.0"),
        ("pinode-jenkins.yaml", "jenkins", "5.9.53"),
    ] {
        let doc = chart_doc(&boot, manifest);
        let spec = doc["spec"].as_object().unwrap();
        // The archive, byte for byte, and nothing that would send the node to a repository.
        let content = spec["chartContent"].as_str().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap();
        assert_eq!(decoded, repo.served(chart, version), "{chart}");
        for key in ["repo", "chart", "version"] {
            assert!(!spec.contains_key(key), "{chart}: spec.{key}: {spec:?}");
        }
        // The values are still there.
        assert!(spec["valuesContent"].as_str().unwrap().len() > 10);
    }
    // Downloaded into the cache, by digest.
    let files = cached_files(&env);
    for (chart, version) in [("gitlab-runner", "0.86.0"), ("jenkins", "5.9.53")] {
        let sha = sha256(&repo.served(chart, version));
        assert!(files.contains(&format!("{sha}.tgz")), "{files:?}");
    }
    assert!(!files.iter().any(|f| f.ends_with(".part")), "{files:?}");
    // Once: a second render (and an offline one) reads the cache, not the repository.
    let downloads = |repo: &StandInRepo| {
        repo.requests()
            .iter()
            .filter(|r| r.ends_with(".tgz"))
            .count()
    };
    assert_eq!(downloads(&repo), 2, "{:?}", repo.requests());
    let again = render(&env, &repo, &path, "lab-1", "again");
    assert!(again.status.success(), "{}", stderr(&again));
    let offline = output(
        pinode_with(&env, &repo)
            .arg("--offline")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("offline")),
    );
    assert!(offline.status.success(), "{}", stderr(&offline));
    assert_eq!(downloads(&repo), 2, "{:?}", repo.requests());
    assert_eq!(
        std::fs::read(boot.join("pinode/k3s/pinode-gitlab-runner.yaml")).ok(),
        std::fs::read(
            env.dir
                .path()
                .join("offline/boot/pinode/k3s/pinode-gitlab-runner.yaml")
        )
        .ok()
    );
    // The stage stays shellcheck-clean.
    run(Command::new("shellcheck")
        .args(["--shell=sh", "--severity=style"])
        .arg(boot.join("pinode/firstboot.sh")));
    // The size on the FAT: the manifest is the archive's base64 plus the values.
    for name in ["pinode-gitlab-runner.yaml", "pinode-jenkins.yaml"] {
        let size = std::fs::metadata(files_named(&boot, name)[0].clone())
            .unwrap()
            .len();
        eprintln!("{name}: {size} bytes on the boot partition");
    }
    // profile check says where charts and images come from.
    let check = output(
        pinode_with(&env, &repo)
            .args(["profile", "check"])
            .arg(&path),
    );
    assert!(check.status.success(), "{}", stderr(&check));
    let said = String::from_utf8_lossy(&check.stdout);
    assert!(
        said.contains("chart: gitlab-runner 0.86.0 from")
            && said.contains("embedded (chartContent)")
            && said.contains(&format!("registry mirror: {MIRROR}")),
        "{said}"
    );
    let note = stderr(&check);
    assert!(
        note.contains("not their container images") && note.contains(MIRROR),
        "{note}"
    );
    // `cache clean` empties the charts too.
    run(pinode_with(&env, &repo).args(["cache", "clean"]));
    assert!(
        !cache(&env).join("charts").exists(),
        "{:?}",
        cached_files(&env)
    );
}

#[test]
fn without_airgap_the_helmchart_names_the_repository() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    let env = UserEnv::new();
    let path = profile(&env, "online.yaml", "", &runners(&repo.url()));
    let out = render(&env, &repo, &path, "lab-1", "online");
    assert!(out.status.success(), "{}", stderr(&out));
    let boot = env.dir.path().join("online/boot");
    let doc = chart_doc(&boot, "pinode-gitlab-runner.yaml");
    assert_eq!(doc["spec"]["repo"], repo.url().as_str());
    assert_eq!(doc["spec"]["chart"], "gitlab-runner");
    assert!(doc["spec"].get("chartContent").is_none());
    assert!(repo.requests().is_empty(), "{:?}", repo.requests());
}

#[test]
fn a_wrong_digest_is_refused_and_nothing_is_kept() {
    let repo = StandInRepo::start(|chart, sha| {
        if chart == "gitlab-runner" {
            // The index lies: one digit changed.
            let flipped = if sha.starts_with('0') { "1" } else { "0" };
            format!("{flipped}{}", &sha[1..])
        } else {
            sha.to_string()
        }
    });
    let env = UserEnv::new();
    let path = profile(&env, "bad.yaml", &airgap(&repo), &runners(&repo.url()));
    let out = render(&env, &repo, &path, "lab-1", "bad");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("gitlab-runner 0.86.0") && err.contains("SHA-256 mismatch"),
        "{err}"
    );
    assert!(
        repo.requests()
            .iter()
            .any(|r| r.ends_with("gitlab-runner-0.86.0.tgz")),
        "the archive was downloaded: {:?}",
        repo.requests()
    );
    let files = cached_files(&env);
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with(".tgz") || f.ends_with(".part") || f.ends_with(".json")),
        "{files:?}"
    );
    assert!(!env.dir.path().join("bad/boot").exists());
}

/// The keys K3s documents for registries.yaml (docs.k3s.io/installation/private-registry,
/// "Registries Configuration File"): two top-level keys, and per mirror `endpoint` and
/// `rewrite`.
const TOP_KEYS: [&str; 2] = ["mirrors", "configs"];
const MIRROR_KEYS: [&str; 2] = ["endpoint", "rewrite"];

#[test]
fn the_registry_mirror_is_k3s_registries_yaml_on_every_node() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    let env = UserEnv::new();
    let path = profile(
        &env,
        "mirror.yaml",
        &format!("  registry_mirror: {MIRROR}\n"),
        &runners(&repo.url()),
    );
    for node in ["lab-1", "lab-2"] {
        let out = render(&env, &repo, &path, node, node);
        assert!(out.status.success(), "{}", stderr(&out));
        let boot = env.dir.path().join(format!("{node}/boot"));
        let file = boot.join("pinode/k3s-registries.yaml");
        // PyYAML, as an independent parser.
        let doc = pyyaml(&file);
        let top = doc.as_object().unwrap();
        assert!(top.keys().all(|k| TOP_KEYS.contains(&k.as_str())), "{doc}");
        let mirrors = doc["mirrors"].as_object().unwrap();
        for registry in ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io", "*"] {
            let entry = mirrors[registry].as_object().unwrap();
            assert!(
                entry.keys().all(|k| MIRROR_KEYS.contains(&k.as_str())),
                "{entry:?}"
            );
            assert_eq!(entry["endpoint"], serde_json::json!([MIRROR]), "{registry}");
        }
        // The wildcard is quoted, as the K3s docs require.
        assert!(std::fs::read_to_string(&file).unwrap().contains("\"*\""));
        assert_eq!(
            mode(&file) & 0o077,
            0o044,
            "not secret: world-readable is fine"
        );
        run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(boot.join("pinode/firstboot.sh")));
    }
}

/// A stand-in K3s installer: records whether registries.yaml was in place when it ran.
const FAKE_INSTALLER: &str = r#"#!/bin/sh
mkdir -p /var/lib/pinode-test
{
	printf 'args=%s\n' "$*"
	if [ -f /etc/rancher/k3s/registries.yaml ]; then echo registries=present; fi
} >>/var/lib/pinode-test/install.log
mkdir -p /etc/rancher/k3s
echo 'apiVersion: v1 # a stand-in kubeconfig' >/etc/rancher/k3s/k3s.yaml
"#;

#[test]
fn registries_yaml_is_in_place_before_k3s_is_installed() {
    if !root_or_skip("runs the first-boot scripts in a mount namespace") {
        return;
    }
    let env = UserEnv::new();
    let path = write_profile(
        env.dir.path(),
        "mirror-boot.yaml",
        &format!(
            "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  token_env: K3S_TOKEN
  registry_mirror: {MIRROR}
nodes:
  - hostname: lab-1
    role: server
  - hostname: lab-2
    role: agent
"
        ),
    );
    for node in ["lab-1", "lab-2"] {
        let (root, rendered) = first_stage_in_scratch(&env, &path, node, FAKE_INSTALLER, |_| {});
        let out = root.run("/usr/local/lib/pinode/firstboot.sh run");
        assert!(out.status.success(), "second stage: {}", stderr(&out));
        let log = std::fs::read_to_string(root.path("varlib/pinode-test/install.log")).unwrap();
        assert!(log.contains("registries=present"), "{node}: {log}");
        let placed = root.path("etc/rancher/k3s/registries.yaml");
        assert_eq!(
            std::fs::read(&placed).unwrap(),
            std::fs::read(rendered.join("boot/pinode/k3s-registries.yaml")).unwrap()
        );
    }
}

#[test]
fn refusals_name_their_line() {
    let env = UserEnv::new();
    let cases: [(&str, &str, &str, &[&str]); 4] = [
        (
            "  airgap: true\n  k3s:\n    version: v1.33.5+k3s1\n",
            "    - kind: github\n      url: https://github.com/example\n      token_env: GITHUB_TOKEN\n      chart_repo: https://ghcr.io/actions\n",
            "chart_repo",
            &["cluster.runner[0].chart_repo", "oci://"],
        ),
        (
            "  registry_mirror: https://user:secret@mirror.lan\n",
            "    - kind: forgejo\n      url: https://forgejo.example.com\n      token_env: FORGEJO_TOKEN\n",
            "registry_mirror",
            &["cluster.registry_mirror", "user name or password"],
        ),
        (
            "  registry_mirror: mirror.lan:5000\n",
            "    - kind: forgejo\n      url: https://forgejo.example.com\n      token_env: FORGEJO_TOKEN\n",
            "registry_mirror",
            &["cluster.registry_mirror", "https://"],
        ),
        (
            "",
            "    - kind: forgejo\n      url: https://forgejo.example.com\n      token_env: FORGEJO_TOKEN\n      chart_repo: https://charts.example.com\n",
            "chart_repo",
            &["cluster.runner[0].chart_repo", "gitlab or jenkins"],
        ),
    ];
    for (i, (cluster, runner, marker, says)) in cases.iter().enumerate() {
        let path = profile(&env, &format!("refused-{i}.yaml"), cluster, runner);
        let text = std::fs::read_to_string(&path).unwrap();
        let line = text.lines().position(|l| l.contains(marker)).unwrap() + 1;
        let out = output(
            env.pinode()
                .env(
                    "GITHUB_TOKEN",
                    "github_pat_0123456789abcdefghij_klmnopqrstuvwxyz",
                )
                .env("FORGEJO_TOKEN", "0123456789abcdef0123456789abcdef01234567")
                .args(["profile", "check"])
                .arg(&path),
        );
        assert!(!out.status.success(), "{i}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("refused-{i}.yaml:{line}:")),
            "{i}: line {line}: {err}"
        );
        for s in *says {
            assert!(err.contains(s), "{i}: {s}: {err}");
        }
        assert!(
            !err.contains("secret@"),
            "{i}: the password is echoed: {err}"
        );
    }
}

#[test]
fn prepare_puts_the_embedded_chart_on_the_founders_card() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    let env = UserEnv::new();
    let base = copy_fixture("bookworm", env.dir.path());
    let path = profile(&env, "prepare.yaml", &airgap(&repo), &runners(&repo.url()));
    let out = env.dir.path().join("out");
    run(pinode_with(&env, &repo)
        .args(["prepare", "--profile"])
        .arg(&path)
        .arg("--image")
        .arg(&base)
        .arg("--out-dir")
        .arg(&out));
    let fat = extract_boot(&out.join("lab-1.img"), env.dir.path());
    fsck_fat(&fat).unwrap();
    let manifest = mread(&fat, "pinode/k3s/pinode-gitlab-runner.yaml").expect("on the FAT");
    let file = env.dir.path().join("from-fat.yaml");
    std::fs::write(&file, &manifest).unwrap();
    let doc = yaml_documents(&file)
        .into_iter()
        .find(|d| d["kind"] == "HelmChart")
        .unwrap();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(doc["spec"]["chartContent"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, repo.served("gitlab-runner", "0.86.0"));
    // The agent's card carries no chart.
    let agent = extract_boot(&out.join("lab-2.img"), env.dir.path());
    assert!(mread(&agent, "pinode/k3s/pinode-gitlab-runner.yaml").is_none());
}

const GH_TOKEN: &str = "github_pat_11ABCDEFG0_test0token0for0pinode0only0123456789";

fn arc_runner(oci: &str) -> String {
    format!(
        "    - kind: github
      url: https://github.com/acme/app
      token_env: GH_TOKEN
      chart_repo: {oci}
"
    )
}

#[test]
fn arc_charts_are_pulled_from_an_oci_registry_with_a_token_and_embedded() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    repo.add_oci_charts("0.14.2", str::to_string);
    let env = UserEnv::new();
    let path = profile(&env, "arc.yaml", &airgap(&repo), &arc_runner(&repo.oci()));
    let out = output(
        pinode_with(&env, &repo)
            .env("GH_TOKEN", GH_TOKEN)
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("arc")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let found = files_named(&env.dir.path().join("arc/boot"), "pinode-github-arc.yaml");
    validate_manifest(&found[0]);
    let charts: Vec<_> = yaml_documents(&found[0])
        .into_iter()
        .filter(|d| d["kind"] == "HelmChart")
        .collect();
    assert_eq!(charts.len(), 2);
    for (doc, chart) in charts
        .iter()
        .zip(["gha-runner-scale-set-controller", "gha-runner-scale-set"])
    {
        let spec = doc["spec"].as_object().unwrap();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(spec["chartContent"].as_str().unwrap())
            .unwrap();
        assert_eq!(decoded, repo.served(chart, "0.14.2"), "{chart}");
        assert!(
            !spec.contains_key("chart") && !spec.contains_key("version"),
            "{spec:?}"
        );
    }
    // The protocol: an anonymous try, the token for this repository's pull scope, then the
    // manifest and the blob with it; the GitHub token never reaches the registry.
    let log = repo.requests();
    let scope = "scope=repository%3Aarc%2Fgha-runner-scale-set%3Apull";
    assert!(
        log.iter()
            .any(|l| l.starts_with("/token?") && l.contains(scope)),
        "{log:?}"
    );
    assert!(log.contains(&"auth None".to_string()), "{log:?}");
    assert!(
        log.contains(&"auth Bearer stand-in-token".to_string()),
        "{log:?}"
    );
    assert!(log.iter().any(|l| l.contains("/blobs/sha256:")), "{log:?}");
    assert!(!log.iter().any(|l| l.contains(GH_TOKEN)), "{log:?}");
    // Without airgap: the OCI reference, as before.
    let online = profile(&env, "arc-online.yaml", "", &arc_runner(&repo.oci()));
    let out = output(
        pinode_with(&env, &repo)
            .env("GH_TOKEN", GH_TOKEN)
            .args(["render", "--profile"])
            .arg(&online)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("arc-online")),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let found = files_named(
        &env.dir.path().join("arc-online/boot"),
        "pinode-github-arc.yaml",
    );
    let doc = &yaml_documents(&found[0])[0];
    assert_eq!(
        doc["spec"]["chart"],
        format!("{}/gha-runner-scale-set-controller", repo.oci()).as_str()
    );
}

#[test]
fn an_oci_layer_that_does_not_match_its_digest_is_refused() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    repo.add_oci_charts("0.14.2", |sha| {
        let flipped = if sha.starts_with('0') { "1" } else { "0" };
        format!("{flipped}{}", &sha[1..])
    });
    let env = UserEnv::new();
    let path = profile(
        &env,
        "arc-bad.yaml",
        &airgap(&repo),
        &arc_runner(&repo.oci()),
    );
    let out = output(
        pinode_with(&env, &repo)
            .env("GH_TOKEN", GH_TOKEN)
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("arc-bad")),
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("gha-runner-scale-set-controller 0.14.2") && err.contains("SHA-256 mismatch"),
        "{err}"
    );
    assert!(
        cached_files(&env)
            .iter()
            .all(|f| !f.ends_with(".tgz") && !f.ends_with(".part"))
    );
}

/// The keys containers-registries.conf(5) documents (containers/image
/// `docs/containers-registries.conf.5.md`, version 2): per `[[registry]]`, and per mirror.
const CRIO_REGISTRY_KEYS: [&str; 6] = [
    "prefix",
    "location",
    "insecure",
    "blocked",
    "mirror",
    "mirror-by-digest-only",
];
const CRIO_MIRROR_KEYS: [&str; 2] = ["location", "insecure"];

#[test]
fn on_kubeadm_the_mirror_is_a_crio_drop_in_placed_before_cri_o() {
    let env = UserEnv::new();
    let path = write_profile(
        env.dir.path(),
        "crio.yaml",
        "version: 1
os:
  image: raspios-lite-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  distribution: kubeadm
  token_env: KUBEADM_TOKEN
  registry_mirror: http://10.0.0.2:5000
nodes:
  - hostname: lab-1
    role: server
  - hostname: lab-2
    role: agent
",
    );
    for node in ["lab-1", "lab-2"] {
        let out = env.dir.path().join(format!("crio-{node}"));
        run(env
            .pinode()
            .env("KUBEADM_TOKEN", "abcdef.0123456789abcdef")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", node, "--generation", "bookworm", "--out-dir"])
            .arg(&out));
        let boot = out.join("boot");
        // Python's tomllib, as an independent parser.
        let parsed = run(Command::new("python3")
            .args([
                "-c",
                "import json,sys,tomllib; print(json.dumps(tomllib.load(open(sys.argv[1],'rb'))))",
            ])
            .arg(boot.join("pinode/crio-registries.conf")));
        let doc: serde_json::Value = serde_json::from_str(&parsed).unwrap();
        let registries = doc["registry"].as_array().unwrap();
        let prefixes: Vec<_> = registries.iter().map(|r| r["prefix"].clone()).collect();
        assert_eq!(
            prefixes,
            ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"].map(serde_json::Value::from)
        );
        for registry in registries {
            let table = registry.as_object().unwrap();
            assert!(
                table
                    .keys()
                    .all(|k| CRIO_REGISTRY_KEYS.contains(&k.as_str()))
            );
            let mirror = registry["mirror"][0].as_object().unwrap();
            assert!(
                mirror
                    .keys()
                    .all(|k| CRIO_MIRROR_KEYS.contains(&k.as_str()))
            );
            assert_eq!(mirror["location"], "10.0.0.2:5000");
            assert_eq!(mirror["insecure"], true, "an http:// mirror");
        }
        // Placed before CRI-O's packages are installed.
        let script = std::fs::read_to_string(boot.join("pinode/firstboot.sh")).unwrap();
        let placed = script
            .find("step \"registry mirror\" install -D -m 644 /etc/pinode/crio-registries.conf /etc/containers/registries.conf.d/50-pinode-mirror.conf")
            .expect("the step");
        let packages = script.find("step \"kubernetes packages\"").unwrap();
        assert!(placed < packages);
        run(Command::new("shellcheck")
            .args(["--shell=sh", "--severity=style"])
            .arg(boot.join("pinode/firstboot.sh")));
    }
}

#[test]
fn a_damaged_cached_chart_is_deleted_and_downloaded_again() {
    let repo = StandInRepo::start(|_, sha| sha.to_string());
    let env = UserEnv::new();
    let path = profile(&env, "damaged.yaml", &airgap(&repo), &runners(&repo.url()));
    let first = render(&env, &repo, &path, "lab-1", "first");
    assert!(first.status.success(), "{}", stderr(&first));
    let served = repo.served("gitlab-runner", "0.86.0");
    let cached = cache(&env).join(format!("charts/{}.tgz", sha256(&served)));
    // One byte changed in the cache: that archive is no longer the one the index names.
    let mut bytes = std::fs::read(&cached).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&cached, &bytes).unwrap();
    // Offline it cannot be had again: refused, and the damaged file is gone.
    let offline = output(
        pinode_with(&env, &repo)
            .arg("--offline")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", "lab-1", "--generation", "bookworm", "--out-dir"])
            .arg(env.dir.path().join("offline")),
    );
    assert!(!offline.status.success());
    assert!(
        stderr(&offline).contains("--offline"),
        "{}",
        stderr(&offline)
    );
    assert!(!cached.exists(), "the damaged archive was kept");
    // Online it is downloaded again, and embedded as served.
    let again = render(&env, &repo, &path, "lab-1", "again");
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(std::fs::read(&cached).unwrap(), served);
    let doc = chart_doc(
        &env.dir.path().join("again/boot"),
        "pinode-gitlab-runner.yaml",
    );
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(doc["spec"]["chartContent"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, served);
}

/// The keys containerd documents for a hosts.toml (containerd/containerd `docs/hosts.md`):
/// top level, and per `[host."URL"]`.
const HOSTS_TOML_KEYS: [&str; 7] = [
    "server",
    "capabilities",
    "ca",
    "client",
    "skip_verify",
    "override_path",
    "host",
];

#[test]
fn on_microk8s_the_mirror_is_in_the_launch_configuration() {
    let env = UserEnv::new();
    let path = write_profile(
        env.dir.path(),
        "mk8s.yaml",
        &format!(
            "version: 1
os:
  image: ubuntu-server-24.04-arm64
defaults:
  user:
    name: alice
    ssh_authorized_keys_file: ~/.ssh/id_ed25519.pub
cluster:
  name: lab
  distribution: microk8s
  token_env: MICROK8S_TOKEN
  registry_mirror: {MIRROR}
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
        ),
    );
    for node in ["lab-1", "lab-2"] {
        let out = env.dir.path().join(format!("mk8s-{node}"));
        // Ubuntu Server (MicroK8s is a snap): its OS from the Ubuntu fixture image.
        let ubuntu = fixture("ubuntu-noble");
        run(env
            .pinode()
            .env("MICROK8S_TOKEN", "0123456789abcdef0123456789abcdef")
            .args(["render", "--profile"])
            .arg(&path)
            .args(["--node", node, "--image"])
            .arg(&ubuntu)
            .arg("--out-dir")
            .arg(&out));
        let launch = pyyaml(&out.join("boot/pinode/secrets/microk8s-launch.yaml"));
        let configs = launch["containerdRegistryConfigs"].as_object().unwrap();
        let names: Vec<_> = configs.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["docker.io", "ghcr.io", "quay.io", "registry.k8s.io"]
        );
        for (registry, text) in configs {
            // Python's tomllib, as an independent parser.
            let parsed = run(Command::new("python3")
                .args([
                    "-c",
                    "import json,sys,tomllib; print(json.dumps(tomllib.loads(sys.argv[1])))",
                ])
                .arg(text.as_str().unwrap()));
            let doc: serde_json::Value = serde_json::from_str(&parsed).unwrap();
            let table = doc.as_object().unwrap();
            assert!(
                table.keys().all(|k| HOSTS_TOML_KEYS.contains(&k.as_str())),
                "{doc}"
            );
            let server = if registry == "docker.io" {
                "https://registry-1.docker.io".to_string()
            } else {
                format!("https://{registry}")
            };
            assert_eq!(doc["server"], server.as_str());
            let host = doc["host"][MIRROR].as_object().unwrap();
            assert!(host.keys().all(|k| HOSTS_TOML_KEYS.contains(&k.as_str())));
            assert_eq!(host["capabilities"], serde_json::json!(["pull", "resolve"]));
        }
    }
}
