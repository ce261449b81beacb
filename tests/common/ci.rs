//! Checks shared by the CI-system tests: rendered manifests against Kubernetes' own schemas
//! (PyPI `kubernetes-validate`) and the helm-controller CRD, chart values against the key
//! lists of the pinned charts' `values.yaml` (tests/data/chart-values, each with its
//! source), and example pipelines against their CI system's JSON schema (PyPI
//! `check-jsonschema`'s vendored copies).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use super::run;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Kubernetes versions manifests are checked for: the oldest the distributions pinode
/// installs by default run, and the newest kubernetes-validate knows.
pub const KUBERNETES_VERSIONS: [&str; 2] = ["1.33.0", "1.37.0"];

/// The `spec` fields of helm-controller's HelmChart CRD (`helm.cattle.io/v1`), from
/// k3s-io/helm-controller `pkg/crds/yaml/generated/helm.cattle.io_helmcharts.yaml` at tag
/// v0.17.7 (commit 21a911f86f912a79e06e4f1596c54d8237320e6e), the version pinode deploys.
pub const HELMCHART_SPEC_FIELDS: [&str; 29] = [
    "authPassCredentials",
    "authSecret",
    "backOffLimit",
    "bootstrap",
    "chart",
    "chartContent",
    "createNamespace",
    "dockerRegistrySecret",
    "driver",
    "failurePolicy",
    "forceConflicts",
    "helmVersion",
    "insecureSkipTLSVerify",
    "jobImage",
    "plainHTTP",
    "podSecurityContext",
    "repo",
    "repoCA",
    "repoCAConfigMap",
    "securityContext",
    "serverSide",
    "set",
    "takeOwnership",
    "targetNamespace",
    "timeout",
    "values",
    "valuesContent",
    "valuesSecrets",
    "version",
];

/// Every document of `path` is accepted by Kubernetes' schemas (strict: no unknown field),
/// and every HelmChart by the CRD: its spec fields always, and the CRD's full OpenAPI schema
/// when the upstream copy is beside the repository (shared/upstream).
pub fn validate_manifest(path: &Path) {
    for version in KUBERNETES_VERSIONS {
        let out = run(Command::new("kubernetes-validate")
            .args(["--strict", "-k", version])
            .arg(path));
        assert!(!out.contains("ERROR"), "{}: {out}", path.display());
    }
    for doc in super::yaml_documents(path) {
        if doc["kind"] == "HelmChart" {
            validate_helmchart(&doc, path);
        }
    }
}

/// A HelmChart against the CRD.
pub fn validate_helmchart(doc: &Value, path: &Path) {
    assert_eq!(doc["apiVersion"], "helm.cattle.io/v1", "{}", path.display());
    let spec = doc["spec"].as_object().expect("spec");
    for key in spec.keys() {
        let key = key.as_str();
        assert!(
            HELMCHART_SPEC_FIELDS.contains(&key),
            "{}: HelmChart spec.{key} is not in the CRD",
            path.display()
        );
    }
    // helm-controller manages a chart with `chart` or `chartContent` (pkg/controllers/chart/
    // chart.go, `shouldManage`, v0.17.7); the embedded archive overrides chart and version.
    assert!(
        doc["spec"]["chart"].is_string() || doc["spec"]["chartContent"].is_string(),
        "{}: spec.chart or spec.chartContent",
        path.display()
    );
    let crd = repo().join("../shared/upstream/helm-controller/helm.cattle.io_helmcharts.yaml");
    if !crd.exists() {
        eprintln!(
            "note: {} absent: HelmChart checked by its spec fields only",
            crd.display()
        );
        return;
    }
    let script = r#"
import json, sys, yaml, jsonschema
crd = yaml.safe_load(open(sys.argv[1]))
schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
doc = json.load(sys.stdin)
jsonschema.validate(doc, schema)
"#;
    let json = serde_json::to_string(doc).unwrap();
    let mut child = Command::new("python3")
        .args(["-c", script])
        .arg(&crd)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}: HelmChart against the CRD: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The key list of a chart version (tests/data/chart-values/CHART-VERSION.keys): its paths,
/// and the paths of open maps (any key below them is the user's).
pub struct ChartKeys {
    pub source: String,
    keys: BTreeSet<String>,
    open: BTreeSet<String>,
}

impl ChartKeys {
    pub fn load(chart: &str, version: &str) -> ChartKeys {
        let path = repo().join(format!("tests/data/chart-values/{chart}-{version}.keys"));
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut keys = BTreeSet::new();
        let mut open = BTreeSet::new();
        let mut source = String::new();
        for line in text.lines() {
            if let Some(comment) = line.strip_prefix('#') {
                if source.is_empty() {
                    source = comment.trim().to_string();
                }
                continue;
            }
            // `path`, `path open`, or `path  # line N` (documented in a comment).
            let line = line.split("  #").next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            match line.strip_suffix(" open") {
                Some(path) => {
                    open.insert(path.to_string());
                    keys.insert(path.to_string());
                }
                None => {
                    keys.insert(line.to_string());
                }
            }
        }
        assert!(!source.is_empty(), "{}: no source line", path.display());
        ChartKeys { source, keys, open }
    }

    /// Panics with every path of `values` that the chart's values.yaml does not have. A
    /// path under an open map is the user's; a list's items are `path[].key`.
    pub fn assert_known(&self, values: &Value, what: &str) {
        let mut unknown = Vec::new();
        self.walk(values, "", &mut unknown);
        assert!(
            unknown.is_empty(),
            "{what}: values not in the chart's values.yaml ({}): {unknown:?}",
            self.source
        );
    }

    fn walk(&self, v: &Value, at: &str, unknown: &mut Vec<String>) {
        if !at.is_empty() && self.open.contains(at) {
            return;
        }
        match v {
            Value::Object(map) if !map.is_empty() => {
                for (k, inner) in map {
                    let path = if at.is_empty() {
                        k.to_string()
                    } else {
                        format!("{at}.{k}")
                    };
                    if !self.keys.contains(&path) {
                        unknown.push(path);
                        continue;
                    }
                    self.walk(inner, &path, unknown);
                }
            }
            Value::Array(items) => {
                for item in items {
                    if let Value::Object(map) = item {
                        for (k, inner) in map {
                            let path = format!("{at}[].{k}");
                            // A list the chart leaves empty: its items are the user's.
                            if self
                                .keys
                                .iter()
                                .any(|key| key.starts_with(&format!("{at}[].")))
                            {
                                if !self.keys.contains(&path) {
                                    unknown.push(path);
                                    continue;
                                }
                                self.walk(inner, &path, unknown);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// `check-jsonschema`, installed by .ci/run in a virtual environment of its own.
pub fn check_jsonschema() -> PathBuf {
    for candidate in [
        "/opt/pinode-check-jsonschema/bin/check-jsonschema",
        "/usr/local/bin/check-jsonschema",
    ] {
        if Path::new(candidate).exists() {
            return candidate.into();
        }
    }
    "check-jsonschema".into()
}

/// `file` validates against check-jsonschema's vendored schema `builtin` (e.g.
/// `vendor.gitlab-ci`, `vendor.github-workflows`), offline.
pub fn assert_schema(builtin: &str, file: &Path) {
    let out = Command::new(check_jsonschema())
        .args(["--builtin-schema", builtin])
        .arg(file)
        .output()
        .unwrap_or_else(|e| panic!("check-jsonschema: {e} (see .ci/run)"));
    assert!(
        out.status.success(),
        "{} against {builtin}: {}{}",
        file.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
