//! HTTP(S) for catalogs and images: one blocking reqwest client (rustls, the standard proxy
//! variables), idle timeouts rather than total ones (a 500 MB image may take a while; a
//! silent server must not), and retries with a growing pause for failures worth retrying.

pub(crate) mod download;

use std::io::Read;
use std::time::Duration;

pub(crate) use download::download;

/// The largest `PINODE_HTTP_TIMEOUT` taken (a day, in seconds).
const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// The largest `PINODE_HTTP_RETRIES` taken.
const MAX_RETRIES: f64 = 100.0;
/// The largest `PINODE_HTTP_BACKOFF_MS` taken (an hour; pauses stop at 30 s anyway).
const MAX_BACKOFF_MS: f64 = 3_600_000.0;
/// How long a catalog fetch may take to connect when a kept copy can stand in for it: a
/// network that cannot connect in a second is, for a document of a few hundred KiB that
/// pinode already has, no better than none, and the user is told which copy is used.
const CATALOG_CONNECT_WITH_FALLBACK: Duration = Duration::from_secs(1);
/// How long a catalog may stay silent when a kept copy can stand in for it.
const CATALOG_IDLE_WITH_FALLBACK: Duration = Duration::from_secs(2);

/// Network settings; the environment can override them (see `HttpSettings::from_env`).
#[derive(Debug, Clone)]
pub struct HttpSettings {
    connect_timeout: Duration,
    /// How long a connection may stay silent (connecting, waiting for headers, or between
    /// two reads of the body) before the attempt is given up.
    idle_timeout: Duration,
    /// Attempts after the first one, for failures that may pass (timeouts, dropped
    /// connections, 5xx, 429). An attempt that made progress does not count.
    pub(crate) retries: u32,
    /// The first pause between attempts; it doubles each time, up to 30 s.
    backoff: Duration,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            connect_timeout: Duration::from_secs(15),
            idle_timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_secs(1),
        }
    }
}

impl HttpSettings {
    /// Defaults, overridden by `PINODE_HTTP_TIMEOUT` (seconds, idle and connect; more than
    /// 0 and at most a day), `PINODE_HTTP_RETRIES` (0 to 100) and `PINODE_HTTP_BACKOFF_MS`
    /// (0 to an hour). A value that does not parse or lies outside its range (`-1`, `NaN`,
    /// `inf`, `1e30`) is ignored and the default kept: a duration that large would overflow
    /// (`Duration::from_secs_f64` panics, and so does adding it to an `Instant`).
    pub(crate) fn from_env() -> HttpSettings {
        let mut s = HttpSettings::default();
        let vars = &crate::edge::settings().http;
        let num = |value: &Option<String>, min: f64, max: f64| {
            value
                .as_deref()
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|v| v.is_finite() && *v >= min && *v <= max)
        };
        if let Some(secs) = num(&vars.timeout, f64::MIN_POSITIVE, MAX_TIMEOUT_SECS)
            && let Ok(timeout) = Duration::try_from_secs_f64(secs)
            && !timeout.is_zero()
        {
            s.idle_timeout = timeout;
            s.connect_timeout = timeout;
        }
        if let Some(n) = num(&vars.retries, 0.0, MAX_RETRIES) {
            s.retries = n as u32;
        }
        if let Some(ms) = num(&vars.backoff_ms, 0.0, MAX_BACKOFF_MS)
            && let Ok(backoff) = Duration::try_from_secs_f64(ms / 1000.0)
        {
            s.backoff = backoff;
        }
        s
    }

    /// The settings for fetching a catalog. With a kept copy (or a cached image) to fall
    /// back on, a catalog that cannot be reached at once is not waited for: a short connect
    /// and idle timeout, no retries. Without one, the catalog is the only way on, so it gets
    /// the patience of any download.
    pub(crate) fn for_catalog(&self, fallback_ready: bool) -> HttpSettings {
        if !fallback_ready {
            return self.clone();
        }
        HttpSettings {
            connect_timeout: self.connect_timeout.min(CATALOG_CONNECT_WITH_FALLBACK),
            idle_timeout: self.idle_timeout.min(CATALOG_IDLE_WITH_FALLBACK),
            retries: 0,
            backoff: self.backoff,
        }
    }

    /// The pause before attempt `n` (1-based count of failures so far).
    pub(crate) fn pause(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.backoff
            .checked_mul(factor)
            .unwrap_or(Duration::MAX)
            .min(Duration::from_secs(30))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: String },
    #[error("{url}: {message} (after {attempts} attempt(s))")]
    Transport {
        url: String,
        message: String,
        attempts: u32,
    },
    /// The name does not resolve or nothing listens: not retried (no network, a wrong
    /// name or port), unlike a dropped connection or a timeout.
    #[error("{url}: cannot be reached ({message}); not retried: check the network or the URL")]
    Unreachable { url: String, message: String },
    /// A download that grew past what the catalog (or the overall cap) allows.
    #[error("{url}: the server sent more than {limit} bytes, more than expected")]
    Oversize { url: String, limit: u64 },
    #[error("{url}: larger than {limit} bytes, which is not a catalog")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}: {message}")]
    Protocol { url: String, message: String },
    #[error("{path}: {source}", path = .path.display())]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set up HTTPS: {0}")]
    Setup(String),
}

/// Whether `s` is an http(s) URL (rather than a path or an alias).
pub(crate) fn is_http_url(s: &str) -> bool {
    s.starts_with("https://") || s.starts_with("http://")
}

/// A URL (or anything naming an image or a catalog) as pinode prints it: without
/// `user:password@` and without a query string, either of which may carry a secret (a
/// token in `?token=`, a password in the authority). Everything that prints a URL given by a
/// profile, a catalog or the command line goes through this, in human and JSON output alike.
/// Text that is not a URL (a path, an alias) is shown as it is.
#[derive(Debug, Clone, Copy)]
pub struct Redacted<'a>(pub &'a str);

impl std::fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Some((scheme, rest)) = self.0.split_once("://") else {
            return f.write_str(self.0);
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let path = path.split('#').next().unwrap_or("");
        match path.split_once('?') {
            Some((p, _)) => write!(f, "{scheme}://{host}{p}?…"),
            None => write!(f, "{scheme}://{host}{path}"),
        }
    }
}

impl serde::Serialize for Redacted<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// [`Redacted`], as a string.
pub(crate) fn display_url(url: &str) -> String {
    Redacted(url).to_string()
}

/// The HTTP client.
#[derive(Debug, Clone)]
pub struct Http {
    client: reqwest::blocking::Client,
    pub(crate) settings: HttpSettings,
}

impl Http {
    pub fn new(settings: HttpSettings) -> Result<Http, FetchError> {
        // reqwest is built without a default crypto provider: use ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::blocking::Client::builder()
            .user_agent(concat!("pinode/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(settings.connect_timeout)
            // In reqwest's blocking client this bounds each wait (headers, every read), so
            // it is an idle timeout, not a limit on the whole download.
            .timeout(settings.idle_timeout)
            .build()
            .map_err(|e| FetchError::Setup(e.to_string()))?;
        Ok(Http { client, settings })
    }

    /// A GET whose status has been checked, retried while retrying may help.
    pub(crate) fn get(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<reqwest::blocking::Response, FetchError> {
        self.get_checked(url, headers, false)
    }

    /// [`Http::get`], but a 401 answer is handed back (not an error): an OCI registry answers
    /// an anonymous request with 401 and the token challenge in `WWW-Authenticate`.
    pub(crate) fn get_allowing_401(
        &self,
        url: &str,
        headers: &[(&str, String)],
    ) -> Result<reqwest::blocking::Response, FetchError> {
        self.get_checked(url, headers, true)
    }

    fn get_checked(
        &self,
        url: &str,
        headers: &[(&str, String)],
        allow_401: bool,
    ) -> Result<reqwest::blocking::Response, FetchError> {
        let mut failures = 0;
        loop {
            let mut request = self.client.get(url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let outcome = match request.send() {
                Ok(response)
                    if allow_401 && response.status() == reqwest::StatusCode::UNAUTHORIZED =>
                {
                    Ok(response)
                }
                Ok(response) => classify(url, response),
                // Offline: asking again in a few seconds only keeps the user waiting.
                Err(e) if is_unreachable(&e) => Err(Attempt::Fatal(FetchError::Unreachable {
                    url: display_url(url),
                    message: describe(&e),
                })),
                Err(e) => Err(Attempt::Retry(describe(&e))),
            };
            match outcome {
                Ok(response) => return Ok(response),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry(message)) => {
                    failures += 1;
                    if failures > self.settings.retries {
                        return Err(FetchError::Transport {
                            url: display_url(url),
                            message,
                            attempts: failures,
                        });
                    }
                    std::thread::sleep(self.settings.pause(failures));
                }
            }
        }
    }

    /// The whole body of a small document (a catalog), at most `limit` bytes.
    pub(crate) fn get_small(&self, url: &str, limit: u64) -> Result<Vec<u8>, FetchError> {
        let mut failures = 0;
        loop {
            let response = self.get(url, &[])?;
            let mut body = Vec::new();
            match response.take(limit + 1).read_to_end(&mut body) {
                Ok(_) if body.len() as u64 > limit => {
                    return Err(FetchError::TooLarge {
                        url: display_url(url),
                        limit,
                    });
                }
                Ok(_) => return Ok(body),
                Err(e) => {
                    failures += 1;
                    if failures > self.settings.retries {
                        return Err(FetchError::Transport {
                            url: display_url(url),
                            message: io_message(&e),
                            attempts: failures,
                        });
                    }
                    std::thread::sleep(self.settings.pause(failures));
                }
            }
        }
    }
}

enum Attempt {
    Retry(String),
    Fatal(FetchError),
}

/// Sorts a response into success, worth retrying, or final.
fn classify(
    url: &str,
    response: reqwest::blocking::Response,
) -> Result<reqwest::blocking::Response, Attempt> {
    let status = response.status();
    if status.is_success() || status == reqwest::StatusCode::RANGE_NOT_SATISFIABLE {
        return Ok(response);
    }
    let text = match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    };
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(Attempt::Retry(format!("HTTP {text}")))
    } else {
        Err(Attempt::Fatal(FetchError::Status {
            url: display_url(url),
            status: text,
        }))
    }
}

/// Whether `e` says the host cannot be reached at all: its name does not resolve, the
/// connection was refused, or there is no route to the network or host (no network at all:
/// a network namespace with only a down loopback gives these). They do not pass in seconds,
/// so they are not retried. A timeout is not among them: it may be a slow link.
fn is_unreachable(e: &reqwest::Error) -> bool {
    use std::io::ErrorKind;
    if !e.is_connect() {
        return false;
    }
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                ErrorKind::ConnectionRefused
                    | ErrorKind::NetworkUnreachable
                    | ErrorKind::HostUnreachable
                    | ErrorKind::AddrNotAvailable
            )
        {
            return true;
        }
        // hyper-util's connector names resolver failures "dns error"; reqwest's own
        // resolver wrapper has no public type to test for.
        if s.to_string().starts_with("dns error") {
            return true;
        }
        source = s.source();
    }
    false
}

/// A transport error in one line, without the URL (the caller adds a redacted one).
fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "no answer in time (timed out)".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "connection failed".to_string()
    };
    // The innermost cause is the useful part ("Connection refused", "dns error: ...").
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    let mut last = None;
    while let Some(s) = source {
        last = Some(s.to_string());
        source = s.source();
    }
    match last {
        Some(cause) if !e.is_timeout() => format!("{what}: {cause}"),
        _ => what,
    }
}

/// An I/O error from reading a body: reqwest wraps its own errors (timeouts) in io::Error.
fn io_message(e: &std::io::Error) -> String {
    if let Some(inner) = e.get_ref().and_then(|i| i.downcast_ref::<reqwest::Error>()) {
        return describe(inner);
    }
    if e.kind() == std::io::ErrorKind::TimedOut {
        return "the server went silent (timed out)".into();
    }
    format!("connection lost: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_carry_no_credentials() {
        assert_eq!(
            display_url("https://user:secret@example.com/a/b.img.xz?token=x"),
            "https://example.com/a/b.img.xz?…"
        );
        assert_eq!(
            display_url("http://127.0.0.1:8080/x"),
            "http://127.0.0.1:8080/x"
        );
        assert_eq!(display_url("https://u:p@h?x=1#f"), "https://h?…");
        assert_eq!(display_url("/home/a@b/x?y.img"), "/home/a@b/x?y.img");
        assert_eq!(
            serde_json::to_string(&Redacted("http://a:b@h/p?t=1")).unwrap(),
            "\"http://h/p?…\""
        );
    }

    #[test]
    fn a_catalog_with_a_fallback_is_not_waited_for() {
        let s = HttpSettings::default();
        let impatient = s.for_catalog(true);
        assert_eq!(impatient.connect_timeout, Duration::from_secs(1));
        assert_eq!(impatient.idle_timeout, Duration::from_secs(2));
        assert_eq!(impatient.retries, 0);
        let patient = s.for_catalog(false);
        assert_eq!(patient.connect_timeout, s.connect_timeout);
        assert_eq!(patient.retries, s.retries);
    }

    #[test]
    fn pauses_grow_and_stop_at_thirty_seconds() {
        let s = HttpSettings::default();
        assert_eq!(s.pause(1), Duration::from_secs(1));
        assert_eq!(s.pause(3), Duration::from_secs(4));
        assert_eq!(s.pause(40), Duration::from_secs(30));
    }
}
