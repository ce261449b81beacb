//! Runner charts without a chart repository at first boot (`cluster.airgap: true`).
//!
//! A runner's `HelmChart` normally names a repository, a chart and a version, and the
//! helm-controller job on the node downloads the chart when it installs it. Without internet
//! at first boot that fails, so with `cluster.airgap` pinode downloads the chart once at
//! prepare time, through its cache, and embeds it in the `HelmChart` as `chartContent`
//! (base64 of the `.tgz`). The CRD says `chartContent` "overides `.spec.chart` and
//! `.spec.version`" (k3s-io/helm-controller `pkg/crds/yaml/generated/helm.cattle.io_helmcharts.yaml`,
//! tag v0.17.7), and the controller manages a chart with `chartContent` and no `chart`
//! (`pkg/controllers/chart/chart.go`, `shouldManage`), so the embedded form carries neither
//! `repo`, `chart` nor `version`.
//!
//! Where a chart comes from, for the CI systems that have one in a Helm repository (GitLab:
//! <https://charts.gitlab.io>, Jenkins: <https://charts.jenkins.io>, or the runner's
//! `chart_repo`): the repository's `index.yaml` (read bounded) gives the pinned version's
//! URL and its `digest`, the SHA-256 of the `.tgz` (Helm's repository index format,
//! `helm/helm` `pkg/repo/index.go`, `ChartVersion.Digest`). The archive is downloaded (bounded),
//! verified against that digest, and kept as `CACHE/charts/<sha256>.tgz`, with a record of
//! which repository, chart and version it is, so that the next run (or `--offline`) uses it
//! without the network. A download that does not match is refused before it reaches the
//! cache; a cached archive that no longer matches is deleted and downloaded again.
//!
//! GitHub's ARC charts (two) are OCI artifacts on ghcr.io: pulled anonymously through the
//! registry v2 API (`super::oci_pull`), the layer verified against the manifest's digest.
//! Forgejo's runner is plain manifests: nothing to embed.
//!
//! Size: helm-controller hands `chartContent` to its job in a ConfigMap
//! (`chart-content-<name>`, key `<name>.tgz.base64`, `contentConfigMap` in chart.go), and a
//! ConfigMap holds at most 1 MiB (Kubernetes `MaxSecretSize`/ConfigMap size limit, 1048576
//! bytes); base64 makes 4 bytes of 3, so an archive above [`MAX_CHART_BYTES`] is refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{RunnerKind, RunnerSpec, Runners};
use crate::cache::store::{Cache, CacheError};
use crate::digest::Sha256Hex;
use crate::engine::SpecProblem;
use crate::fetch::{FetchError, Http, display_url};

/// GitLab Runner's chart repository (docs.gitlab.com/runner/install/kubernetes).
pub const GITLAB_REPO: &str = "https://charts.gitlab.io";
/// Jenkins' chart repository (github.com/jenkinsci/helm-charts, README).
pub const JENKINS_REPO: &str = "https://charts.jenkins.io";
/// Where ARC's charts are (OCI artifacts; actions/actions-runner-controller, docs
/// "Deploying runner scale sets with Actions Runner Controller").
pub const GITHUB_OCI: &str = "oci://ghcr.io/actions/actions-runner-controller-charts";

/// The largest chart archive embedded: its base64 (4/3 of it) plus the key must fit in the
/// 1 MiB ConfigMap helm-controller makes of it.
pub const MAX_CHART_BYTES: u64 = 760 << 10;
/// The largest `index.yaml` read. Repositories list every version of every chart they
/// hold (charts.gitlab.io's is several MB); far above that, yet a bound.
const MAX_INDEX_BYTES: u64 = 64 << 20;
/// The largest record file read from the cache.
const MAX_RECORD_BYTES: u64 = 64 << 10;

/// Where a runner's chart comes from: a Helm repository, the chart's name and the version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChartSource {
    pub repo: String,
    pub chart: &'static str,
    pub version: String,
}

/// The charts of `spec`: one for GitLab and Jenkins (a Helm repository), two for GitHub
/// (ARC's controller and scale set, OCI artifacts), none for Forgejo.
pub fn sources_of(spec: &RunnerSpec) -> Vec<ChartSource> {
    let (default_repo, charts): (&str, &[&'static str]) = match spec.kind {
        RunnerKind::Gitlab => (GITLAB_REPO, &["gitlab-runner"]),
        RunnerKind::Jenkins => (JENKINS_REPO, &["jenkins"]),
        RunnerKind::Github => (
            GITHUB_OCI,
            &["gha-runner-scale-set-controller", "gha-runner-scale-set"],
        ),
        RunnerKind::Forgejo => return Vec::new(),
    };
    let repo = spec
        .chart_repo
        .as_deref()
        .unwrap_or(default_repo)
        .trim_end_matches('/')
        .to_string();
    charts
        .iter()
        .map(|chart| ChartSource {
            repo: repo.clone(),
            chart,
            version: spec.chart_version().to_string(),
        })
        .collect()
}

/// The one chart of a CI system that has one (GitLab, Jenkins).
pub fn source_of(spec: &RunnerSpec) -> Option<ChartSource> {
    sources_of(spec).into_iter().next()
}

impl ChartSource {
    /// The chart as an OCI artifact, when its repository is an `oci://` reference.
    fn oci(&self) -> Option<super::oci_pull::OciChart<'_>> {
        super::oci_pull::OciChart::parse(&self.repo, self.chart, &self.version)
    }
}

/// A chart archive, verified, to embed in a HelmChart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmbeddedChart {
    bytes: Vec<u8>,
    sha256: Sha256Hex,
}

impl EmbeddedChart {
    /// The archive as `chartContent` wants it.
    pub(crate) fn base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.bytes)
    }

    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub fn sha256(&self) -> &Sha256Hex {
        &self.sha256
    }
}

/// The charts of a run's runners, by CI system: empty unless the profile says
/// `cluster.airgap: true`.
#[derive(Debug, Clone, Default)]
pub struct Charts {
    by_chart: BTreeMap<&'static str, Arc<EmbeddedChart>>,
}

impl Charts {
    pub fn get(&self, chart: &str) -> Option<&Arc<EmbeddedChart>> {
        self.by_chart.get(chart)
    }

    pub fn is_empty(&self) -> bool {
        self.by_chart.is_empty()
    }

    /// Each chart with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &EmbeddedChart)> {
        self.by_chart.iter().map(|(k, c)| (*k, c.as_ref()))
    }
}

/// Why a chart could not be had. Never holds a secret (chart repositories are public; a
/// repository URL with credentials is refused by `profile check`).
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("chart {chart} {version}: {url}: {message}")]
    Index {
        chart: String,
        version: String,
        url: String,
        message: String,
    },
    #[error(
        "chart {chart} {version}: {url}: SHA-256 mismatch (the repository says {expected}, \
         the download is {actual}); nothing was kept in the cache"
    )]
    Corrupt {
        chart: String,
        version: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error(
        "chart {chart} {version} is {size} bytes: at most {MAX_CHART_BYTES} can be embedded \
         (helm-controller passes it in a ConfigMap, at most 1 MiB as base64)"
    )]
    TooLarge {
        chart: String,
        version: String,
        size: u64,
    },
    #[error(
        "chart {chart} {version} from {repo} is not in the cache, and --offline forbids \
         downloading it (run once online: pinode prepare)"
    )]
    Offline {
        chart: String,
        version: String,
        repo: String,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error(transparent)]
    Fetch(#[from] FetchError),
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Whether a cluster with `runners` and `cluster.airgap` = `airgap` needs embedded charts.
pub fn wanted(runners: Option<&Runners>, airgap: bool) -> bool {
    airgap && runners.is_some_and(|r| !r.is_empty())
}

/// `profile check`'s lines about where the runners' charts and images come from: the
/// embedded charts (with `cluster.airgap`), the registry mirror, and a note that container
/// images still come from a registry at first boot (`cluster.airgap` embeds charts only).
pub fn check_lines(
    runners: Option<&Runners>,
    airgap: bool,
    registry_mirror: Option<&str>,
) -> (Vec<String>, Option<String>) {
    let mut lines = Vec::new();
    if let Some(mirror) = registry_mirror {
        lines.push(format!(
            "registry mirror: {mirror} (for {}; on K3s for every other registry too)",
            crate::engine::registry_mirror::REGISTRIES.join(", ")
        ));
    }
    if !wanted(runners, airgap) {
        return (lines, None);
    }
    for runner in runners.iter().flat_map(|r| r.iter()) {
        for source in sources_of(runner) {
            lines.push(format!(
                "chart: {} {} from {}, downloaded at prepare time and embedded (chartContent)",
                source.chart, source.version, source.repo
            ));
        }
    }
    let registries = match registry_mirror {
        Some(mirror) => format!("through the mirror {mirror}"),
        None => "from docker.io, ghcr.io and the others directly: set cluster.registry_mirror \
                 to a mirror the nodes can reach"
            .to_string(),
    };
    let note = format!(
        "note: cluster.airgap embeds the runners' charts, not their container images: the \
         runners' images are pulled at first boot, {registries}"
    );
    (lines, Some(note))
}

/// The rules of `chart_repo`, at each runner's path.
pub(crate) fn check(runners: &Runners) -> Vec<SpecProblem> {
    let mut out = Vec::new();
    for (at, spec) in runners.entries() {
        if let Some(repo) = &spec.chart_repo {
            let checked = if spec.kind == RunnerKind::Github {
                check_oci_reference(repo)
            } else {
                check_repo_url(repo)
            };
            if let Err(message) = checked {
                out.push(SpecProblem::error(format!("{at}.chart_repo"), message));
            }
        }
    }
    out
}

/// An OCI chart reference for GitHub's `chart_repo`: `oci://HOST[:PORT]/PATH`, the
/// directory that holds ARC's two charts.
pub fn check_oci_reference(reference: &str) -> Result<(), String> {
    let Some(rest) = reference.strip_prefix("oci://") else {
        return Err(format!(
            "ARC's charts are OCI artifacts: give an oci:// reference such as {GITHUB_OCI}"
        ));
    };
    let ok = rest.split_once('/').is_some_and(|(host, path)| {
        !host.is_empty()
            && !host.contains('@')
            && !path.is_empty()
            && path
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    }) && !rest.contains("..");
    if ok {
        Ok(())
    } else {
        Err(format!(
            "not an OCI reference such as {GITHUB_OCI} (a host, a path, no user or password)"
        ))
    }
}

/// A chart repository URL: https, a host, no credentials, query or fragment.
pub fn check_repo_url(url: &str) -> Result<(), String> {
    let parsed = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if parsed.scheme() != "https" {
        return Err("must be an https:// URL".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("names no host".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "carries a user name or password: it would be written into the cache's records \
             and messages; chart repositories that need a login are not supported"
                .into(),
        );
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("must not carry a query or fragment".into());
    }
    Ok(())
}

/// The charts of `runners` (to embed with `cluster.airgap`), from the cache or downloaded
/// now through `http` (`None`: offline).
pub fn obtain(runners: &Runners, cache: &Cache, http: Option<&Http>) -> Result<Charts, ChartError> {
    let mut charts = Charts::default();
    for runner in runners.iter() {
        for source in sources_of(runner) {
            let chart = fetch(&source, cache, http)?;
            charts.by_chart.insert(source.chart, Arc::new(chart));
        }
    }
    Ok(charts)
}

/// What the cache records about a chart: which archive a repository's chart version is.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    repo: String,
    chart: String,
    version: String,
    url: String,
    sha256: Sha256Hex,
}

/// The record's file name: a hash of repository, chart and version (the repository URL may
/// hold any character).
fn record_name(source: &ChartSource) -> String {
    let key = format!("{}\n{}\n{}", source.repo, source.chart, source.version);
    let digest = Sha256::digest(key.as_bytes());
    format!(
        "{}.json",
        hex::encode(digest.iter().take(16).copied().collect::<Vec<u8>>())
    )
}

/// One chart: the cached archive if its record and bytes still agree, else downloaded.
pub fn fetch(
    source: &ChartSource,
    cache: &Cache,
    http: Option<&Http>,
) -> Result<EmbeddedChart, ChartError> {
    let (dir, _hand_back) = cache.charts_dir()?;
    let record_path = dir.join(record_name(source));
    if let Some(chart) = cached(&dir, &record_path) {
        return Ok(chart);
    }
    let Some(http) = http else {
        return Err(ChartError::Offline {
            chart: source.chart.to_string(),
            version: source.version.clone(),
            repo: source.repo.clone(),
        });
    };
    let (url, digest, bytes) = match source.oci() {
        Some(oci) => super::oci_pull::pull(&oci, http, MAX_CHART_BYTES).map_err(|e| match e {
            super::oci_pull::PullError::Fetch(e) => ChartError::Fetch(e),
            super::oci_pull::PullError::At { url, message } => ChartError::Index {
                chart: source.chart.to_string(),
                version: source.version.clone(),
                url,
                message,
            },
            super::oci_pull::PullError::TooLarge(size) => ChartError::TooLarge {
                chart: source.chart.to_string(),
                version: source.version.clone(),
                size,
            },
        })?,
        None => {
            let (url, digest) = locate(source, http)?;
            let bytes = download(source, http, &url)?;
            (url, digest, bytes)
        }
    };
    let archive = dir.join(format!("{}.tgz", digest.as_str()));
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ChartError::Io { path, source }
    };
    // Verified in memory (at most MAX_CHART_BYTES): nothing that does not match ever
    // reaches the cache, and two runs fetching the same chart cannot mix their bytes.
    let actual = hex::encode(Sha256::digest(&bytes));
    if actual != digest.as_str() {
        return Err(ChartError::Corrupt {
            chart: source.chart.to_string(),
            version: source.version.clone(),
            url: display_url(&url),
            expected: digest.as_str().to_string(),
            actual,
        });
    }
    crate::cleanup::write_atomic(&archive, &bytes).map_err(io(&archive))?;
    let record = Record {
        repo: source.repo.clone(),
        chart: source.chart.to_string(),
        version: source.version.clone(),
        url: display_url(&url),
        sha256: digest.clone(),
    };
    let text = serde_json::to_vec_pretty(&record).map_err(|e| ChartError::Io {
        path: record_path.clone(),
        source: std::io::Error::other(e),
    })?;
    crate::cleanup::write_atomic(&record_path, &text).map_err(io(&record_path))?;
    Ok(EmbeddedChart {
        bytes,
        sha256: digest,
    })
}

/// The archive a record names, if both are there and the bytes still hash to the record's
/// digest; a damaged archive is deleted (and downloaded again by the caller).
fn cached(dir: &Path, record_path: &Path) -> Option<EmbeddedChart> {
    let text = crate::input::read_regular(record_path, MAX_RECORD_BYTES, "a chart record").ok()?;
    let record: Record = serde_json::from_slice(&text).ok()?;
    let archive = dir.join(format!("{}.tgz", record.sha256.as_str()));
    let bytes = crate::input::read_regular(&archive, MAX_CHART_BYTES, "a chart archive").ok()?;
    if hex::encode(Sha256::digest(&bytes)) != record.sha256.as_str() {
        let _ = std::fs::remove_file(&archive);
        return None;
    }
    Some(EmbeddedChart {
        bytes,
        sha256: record.sha256,
    })
}

/// A Helm repository's `index.yaml`, the fields pinode reads.
#[derive(Debug, Deserialize)]
struct Index {
    #[serde(default)]
    entries: BTreeMap<String, Vec<IndexVersion>>,
}

#[derive(Debug, Deserialize)]
struct IndexVersion {
    version: String,
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    digest: Option<String>,
}

/// The archive's URL (relative ones resolved against the repository) and digest of the
/// pinned version, from the repository's index.
fn locate(source: &ChartSource, http: &Http) -> Result<(String, Sha256Hex), ChartError> {
    let index_url = format!("{}/index.yaml", source.repo);
    let problem = |message: String| ChartError::Index {
        chart: source.chart.to_string(),
        version: source.version.clone(),
        url: display_url(&index_url),
        message,
    };
    let text = http.get_small(&index_url, MAX_INDEX_BYTES)?;
    let index: Index =
        serde_yaml::from_slice(&text).map_err(|e| problem(format!("not a Helm index: {e}")))?;
    let versions = index.entries.get(source.chart).ok_or_else(|| {
        problem(format!(
            "the repository has no chart {}",
            crate::ui::quoted(source.chart)
        ))
    })?;
    let entry = versions
        .iter()
        .find(|v| v.version == source.version)
        .ok_or_else(|| problem("the repository does not list this version".into()))?;
    let digest = entry
        .digest
        .as_deref()
        .ok_or_else(|| problem("the index gives no digest for it: it cannot be verified".into()))
        .and_then(|d| {
            Sha256Hex::parse(d).map_err(|_| problem("its digest is not a SHA-256".into()))
        })?;
    let first = entry
        .urls
        .first()
        .ok_or_else(|| problem("the index gives no URL for it".into()))?;
    let base = reqwest::Url::parse(&format!("{}/", source.repo))
        .map_err(|e| problem(format!("the repository URL: {e}")))?;
    let url = base
        .join(first)
        .map_err(|e| problem(format!("its URL {}: {e}", crate::ui::quoted(first))))?;
    if !matches!(url.scheme(), "https" | "http") {
        return Err(problem(format!(
            "its URL {} is not http(s)",
            crate::ui::quoted(first)
        )));
    }
    Ok((url.to_string(), digest))
}

/// The archive's bytes, at most [`MAX_CHART_BYTES`].
fn download(source: &ChartSource, http: &Http, url: &str) -> Result<Vec<u8>, ChartError> {
    let response = http.get(url, &[])?;
    let mut bytes = Vec::new();
    response
        .take(MAX_CHART_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| ChartError::Index {
            chart: source.chart.to_string(),
            version: source.version.clone(),
            url: display_url(url),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_CHART_BYTES {
        return Err(ChartError::TooLarge {
            chart: source.chart.to_string(),
            version: source.version.clone(),
            size: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// The chart keys of a runner's HelmChart `spec`: the repository, chart and version, or
/// with `cluster.airgap` the embedded archive alone.
pub(crate) fn helm_chart_keys(
    source: &ChartSource,
    placement: &ChartPlacement,
) -> Result<Vec<(&'static str, String)>, super::CiError> {
    match placement {
        // Helm takes an OCI chart by its full reference, without a repository.
        ChartPlacement::Repository if source.oci().is_some() => Ok(vec![
            ("chart", format!("{}/{}", source.repo, source.chart)),
            ("version", source.version.clone()),
        ]),
        ChartPlacement::Repository => Ok(vec![
            ("repo", source.repo.clone()),
            ("chart", source.chart.to_string()),
            ("version", source.version.clone()),
        ]),
        ChartPlacement::Embedded(charts) => match charts.get(source.chart) {
            Some(chart) => Ok(vec![("chartContent", chart.base64())]),
            None => Err(missing(source)),
        },
    }
}

fn missing(source: &ChartSource) -> super::CiError {
    super::CiError {
        kind: "chart",
        message: format!(
            "cluster.airgap: the chart {} {} was not downloaded for embedding (pinode \
             render and patch need it in the cache: run pinode prepare or download first)",
            source.chart, source.version
        ),
    }
}

/// How a runner's HelmChart gets its chart.
#[derive(Debug, Clone, Default)]
pub(crate) enum ChartPlacement {
    /// From its repository, at first boot (no `cluster.airgap`).
    #[default]
    Repository,
    /// Embedded (`cluster.airgap`), from these charts; one that is not there cannot be
    /// rendered (rather than silently needing the repository).
    Embedded(Charts),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_urls() {
        assert!(check_repo_url("https://charts.gitlab.io").is_ok());
        assert!(check_repo_url("https://mirror.example/charts/gitlab").is_ok());
        assert!(check_repo_url("http://charts.gitlab.io").is_err());
        assert!(check_repo_url("https://u:p@charts.gitlab.io").is_err());
        assert!(check_repo_url("https://charts.gitlab.io/?x=1").is_err());
        assert!(check_repo_url("charts.gitlab.io").is_err());
    }

    #[test]
    fn sources() {
        let mut spec = RunnerSpec::new(RunnerKind::Gitlab);
        let source = source_of(&spec).unwrap();
        assert_eq!(source.repo, GITLAB_REPO);
        assert_eq!(source.chart, "gitlab-runner");
        spec.chart_repo = Some("https://example.org/charts/".into());
        assert_eq!(source_of(&spec).unwrap().repo, "https://example.org/charts");
        let arc = sources_of(&RunnerSpec::new(RunnerKind::Github));
        assert_eq!(arc.len(), 2);
        assert!(arc.iter().all(|s| s.oci().is_some()));
        assert!(source_of(&RunnerSpec::new(RunnerKind::Forgejo)).is_none());
    }

    #[test]
    fn the_size_bound_fits_a_configmap() {
        // base64 of the largest archive, plus a key such as "gitlab-runner.tgz.base64".
        assert!(MAX_CHART_BYTES.div_ceil(3) * 4 + 64 <= 1 << 20);
    }
}
