//! An anonymous pull of a Helm chart stored as an OCI artifact (GitHub's ARC charts on
//! ghcr.io), for `cluster.airgap`: the registry v2 API, only as far as a public chart needs.
//!
//! 1. `GET /v2/<repository>/manifests/<version>` (Accept: the OCI image manifest). A registry
//!    that wants a token answers 401 with `WWW-Authenticate: Bearer realm="…",service="…",
//!    scope="…"` (the Docker registry token authentication spec, distribution/distribution
//!    `docs/spec/auth/token.md`); pinode asks the realm for an anonymous token (`?service=…&
//!    scope=repository:<repository>:pull`), reads `token` (or `access_token`) from its JSON
//!    answer and asks again with `Authorization: Bearer`.
//! 2. The manifest's layer of media type `application/vnd.cncf.helm.chart.content.v1.tar+gzip`
//!    (helm/helm `pkg/registry/constants.go`, `ChartLayerMediaType`) is the chart archive; its
//!    `digest` (`sha256:<hex>`) and `size` are the manifest's.
//! 3. `GET /v2/<repository>/blobs/<digest>` (registries redirect to storage; reqwest follows
//!    and drops the Authorization header on another host), bounded by the layer's size.
//!
//! The caller checks the bytes against the digest. The manifest itself is trusted as served
//! over HTTPS by the registry: a tag can be moved, which the digest check cannot catch.

use std::io::Read;

use serde::Deserialize;

use crate::digest::Sha256Hex;
use crate::fetch::{FetchError, Http, display_url};

/// Why a pull failed; the caller names the chart.
#[derive(Debug)]
pub(crate) enum PullError {
    Fetch(FetchError),
    /// What was wrong at `url`.
    At {
        url: String,
        message: String,
    },
    /// The chart layer is larger than the caller takes.
    TooLarge(u64),
}

impl From<FetchError> for PullError {
    fn from(e: FetchError) -> PullError {
        PullError::Fetch(e)
    }
}

/// The OCI image manifest, which Helm uses for charts.
const MANIFEST_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
/// A chart's archive layer.
const CHART_LAYER_TYPE: &str = "application/vnd.cncf.helm.chart.content.v1.tar+gzip";
/// The most bytes read of a manifest or a token answer.
const MAX_DOCUMENT_BYTES: u64 = 256 << 10;

/// Where an OCI chart is: `oci://HOST[:PORT]/REPOSITORY` and the chart's name below it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OciChart<'a> {
    pub(crate) host: &'a str,
    pub(crate) repository: String,
    pub(crate) version: &'a str,
}

impl<'a> OciChart<'a> {
    /// `oci://host/path` + `chart`, or `None` when `base` is not an `oci://` reference.
    pub(crate) fn parse(base: &'a str, chart: &str, version: &'a str) -> Option<OciChart<'a>> {
        let rest = base.strip_prefix("oci://")?;
        let (host, path) = rest.split_once('/')?;
        Some(OciChart {
            host,
            repository: format!("{}/{chart}", path.trim_end_matches('/')),
            version,
        })
    }

    fn manifest_url(&self) -> String {
        format!(
            "https://{}/v2/{}/manifests/{}",
            self.host, self.repository, self.version
        )
    }

    fn blob_url(&self, digest: &str) -> String {
        format!(
            "https://{}/v2/{}/blobs/{digest}",
            self.host, self.repository
        )
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
}

#[derive(Debug, Deserialize)]
struct Layer {
    #[serde(rename = "mediaType")]
    media_type: String,
    digest: String,
    size: u64,
}

#[derive(Debug, Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
}

/// Pulls the chart (at most `max_bytes`): its blob URL (for the record), the digest the
/// manifest gives, the bytes (not yet checked against it: the caller does).
pub(crate) fn pull(
    oci: &OciChart,
    http: &Http,
    max_bytes: u64,
) -> Result<(String, Sha256Hex, Vec<u8>), PullError> {
    let manifest_url = oci.manifest_url();
    let problem = |url: &str, message: String| PullError::At {
        url: display_url(url),
        message,
    };
    let accept = ("Accept", MANIFEST_TYPE.to_string());
    let first = http.get_allowing_401(&manifest_url, std::slice::from_ref(&accept))?;
    let (response, auth) = if first.status() == reqwest::StatusCode::UNAUTHORIZED {
        let challenge = first
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| problem(&manifest_url, "401 without a token challenge".into()))?
            .to_string();
        let token = anonymous_token(&challenge, oci, http)
            .map_err(|message| problem(&manifest_url, message))?;
        let auth = ("Authorization", format!("Bearer {token}"));
        let response = http.get(&manifest_url, &[accept, auth.clone()])?;
        (response, Some(auth))
    } else {
        (first, None)
    };
    let manifest: Manifest = serde_json::from_slice(&read_bounded(response, &manifest_url)?)
        .map_err(|e| problem(&manifest_url, format!("not an OCI manifest: {e}")))?;
    let layer = manifest
        .layers
        .iter()
        .find(|l| l.media_type == CHART_LAYER_TYPE)
        .ok_or_else(|| problem(&manifest_url, "the manifest has no Helm chart layer".into()))?;
    if layer.size > max_bytes {
        return Err(PullError::TooLarge(layer.size));
    }
    let digest = layer
        .digest
        .strip_prefix("sha256:")
        .and_then(|hex| Sha256Hex::parse(hex).ok())
        .ok_or_else(|| {
            problem(
                &manifest_url,
                "the chart layer's digest is not sha256".into(),
            )
        })?;
    let blob_url = oci.blob_url(&layer.digest);
    let response = http.get(&blob_url, &auth.into_iter().collect::<Vec<_>>())?;
    let mut bytes = Vec::new();
    response
        .take(layer.size + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| problem(&blob_url, e.to_string()))?;
    if bytes.len() as u64 != layer.size {
        return Err(problem(
            &blob_url,
            format!(
                "{} bytes, the manifest says {} (the download was discarded)",
                bytes.len(),
                layer.size
            ),
        ));
    }
    Ok((blob_url, digest, bytes))
}

/// The answer to a 401's `Bearer` challenge: an anonymous pull token from its realm.
fn anonymous_token(challenge: &str, oci: &OciChart, http: &Http) -> Result<String, String> {
    let params = parse_challenge(challenge).ok_or("a token challenge pinode cannot read")?;
    let realm = params
        .iter()
        .find(|(k, _)| k == "realm")
        .map(|(_, v)| v.as_str())
        .ok_or("the token challenge names no realm")?;
    let mut url = reqwest::Url::parse(realm).map_err(|e| format!("the token realm: {e}"))?;
    if url.scheme() != "https" {
        return Err("the token realm is not https".into());
    }
    {
        let mut query = url.query_pairs_mut();
        if let Some((_, service)) = params.iter().find(|(k, _)| k == "service") {
            query.append_pair("service", service);
        }
        query.append_pair("scope", &format!("repository:{}:pull", oci.repository));
    }
    let answer = http
        .get_small(url.as_str(), MAX_DOCUMENT_BYTES)
        .map_err(|e| e.to_string())?;
    let answer: TokenAnswer =
        serde_json::from_slice(&answer).map_err(|e| format!("the token answer: {e}"))?;
    answer
        .token
        .or(answer.access_token)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the token answer holds no token".into())
}

/// `Bearer k="v",k2="v2"` as pairs (values may hold commas inside their quotes).
fn parse_challenge(text: &str) -> Option<Vec<(String, String)>> {
    let rest = text.trim().strip_prefix("Bearer ")?;
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => value.push(chars.next()?),
                c => value.push(c),
            }
        }
        out.push((key.trim().to_string(), value));
    }
}

fn read_bounded(response: reqwest::blocking::Response, url: &str) -> Result<Vec<u8>, PullError> {
    let mut bytes = Vec::new();
    response
        .take(MAX_DOCUMENT_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FetchError::Protocol {
            url: display_url(url),
            message: e.to_string(),
        })?;
    if bytes.len() as u64 > MAX_DOCUMENT_BYTES {
        return Err(FetchError::TooLarge {
            url: display_url(url),
            limit: MAX_DOCUMENT_BYTES,
        }
        .into());
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let pairs = parse_challenge(
            r#"Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:a/b:pull""#,
        )
        .unwrap();
        assert_eq!(pairs[0], ("realm".into(), "https://ghcr.io/token".into()));
        assert_eq!(pairs[1], ("service".into(), "ghcr.io".into()));
        assert_eq!(pairs[2].1, "repository:a/b:pull");
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Bearer realm=x").is_none());
    }

    #[test]
    fn references() {
        let oci = OciChart::parse(
            "oci://ghcr.io/actions/actions-runner-controller-charts",
            "gha-runner-scale-set",
            "0.14.2",
        )
        .unwrap();
        assert_eq!(oci.host, "ghcr.io");
        assert_eq!(
            oci.manifest_url(),
            "https://ghcr.io/v2/actions/actions-runner-controller-charts/gha-runner-scale-set/manifests/0.14.2"
        );
        assert!(OciChart::parse("https://x/y", "c", "1").is_none());
    }
}
