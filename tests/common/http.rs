//! A real HTTP/1.1 server on 127.0.0.1 for the download tests, with the misbehaviours the
//! tests need: dropping a connection halfway, ignoring Range, stalling, error statuses, and
//! serving slowly. It logs every request (path and Range header).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a path is served.
#[derive(Debug, Clone)]
pub enum Behaviour {
    /// 200 / 206 with Range, ETag, Content-Length.
    Normal,
    /// The first `n` requests send the headers for the whole rest, then `bytes` of the body,
    /// then close the connection. Later requests are normal.
    DropAfter { bytes: usize, times: usize },
    /// Always 200 with the whole body, whatever Range says.
    IgnoreRange,
    /// Like IgnoreRange, but the first request is dropped after `bytes`.
    DropThenIgnoreRange { bytes: usize },
    /// This status and a short body.
    Status(u16),
    /// Headers, then silence.
    Stall,
    /// The body in `chunk`-byte pieces with `pause` between them.
    Slow { chunk: usize, pause: Duration },
    /// 200 without a Content-Length, then the body repeated forever (until the client
    /// hangs up or the server stops).
    Endless,
    /// Every request: 200 with the whole body whatever Range says, dropped after `bytes`.
    AlwaysFullThenDrop { bytes: usize },
}

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
}

struct Route {
    body: Vec<u8>,
    behaviour: Behaviour,
    served: usize,
}

#[derive(Clone)]
pub struct Server {
    pub port: u16,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    log: Arc<Mutex<Vec<Logged>>>,
    stop: Arc<AtomicBool>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = Server {
            port,
            routes: Arc::default(),
            log: Arc::default(),
            stop: Arc::default(),
        };
        let s = server.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = s.handle(stream);
                });
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn serve(&self, path: &str, body: Vec<u8>, behaviour: Behaviour) {
        self.routes.lock().unwrap().insert(
            path.to_string(),
            Route {
                body,
                behaviour,
                served: 0,
            },
        );
    }

    /// Requests for `path` so far.
    pub fn requests(&self, path: &str) -> Vec<Logged> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.path == path)
            .cloned()
            .collect()
    }

    fn handle(&self, stream: TcpStream) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut range = None;
        let mut if_range = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 || header == "\r\n" {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.trim().to_ascii_lowercase().as_str() {
                    "range" => range = Some(value.trim().to_string()),
                    "if-range" => if_range = Some(value.trim().to_string()),
                    _ => {}
                }
            }
        }
        self.log.lock().unwrap().push(Logged {
            path: path.clone(),
            range: range.clone(),
        });
        let (body, behaviour, nth) = {
            let mut routes = self.routes.lock().unwrap();
            match routes.get_mut(&path) {
                Some(r) => {
                    r.served += 1;
                    (r.body.clone(), r.behaviour.clone(), r.served)
                }
                None => (b"not found\n".to_vec(), Behaviour::Status(404), 1),
            }
        };
        let etag = format!(
            "\"{:x}\"",
            body.len() * 31 + body.first().copied().unwrap_or(0) as usize
        );
        let mut out = stream;
        let honour_range = matches!(
            behaviour,
            Behaviour::Normal | Behaviour::DropAfter { .. } | Behaviour::Slow { .. }
        ) && if_range.as_ref().is_none_or(|v| *v == etag);
        let start = match (&range, honour_range) {
            (Some(r), true) => r
                .strip_prefix("bytes=")
                .and_then(|r| r.strip_suffix('-'))
                .and_then(|n| n.parse::<usize>().ok()),
            _ => None,
        };
        match behaviour {
            Behaviour::Status(code) => {
                let text = format!("status {code}\n");
                write!(
                    out,
                    "HTTP/1.1 {code} Test\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )?;
                return Ok(());
            }
            Behaviour::Endless => {
                write!(out, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")?;
                let piece = if body.is_empty() {
                    vec![0u8; 65536]
                } else {
                    body
                };
                while !self.stop.load(Ordering::SeqCst) {
                    out.write_all(&piece)?;
                }
                return Ok(());
            }
            Behaviour::Stall => {
                write!(
                    out,
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                out.flush()?;
                while !self.stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(100));
                }
                return Ok(());
            }
            _ => {}
        }
        let from = start.unwrap_or(0).min(body.len());
        if start.is_some() && from >= body.len() {
            write!(
                out,
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            )?;
            return Ok(());
        }
        let rest = &body[from..];
        if start.is_some() {
            write!(
                out,
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {from}-{}/{}\r\n",
                body.len() - 1,
                body.len()
            )?;
        } else {
            write!(out, "HTTP/1.1 200 OK\r\n")?;
        }
        write!(
            out,
            "Content-Length: {}\r\nETag: {etag}\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n",
            rest.len()
        )?;
        match behaviour {
            Behaviour::DropAfter { bytes, times } if nth <= times => {
                out.write_all(&rest[..bytes.min(rest.len())])?;
                out.flush()?;
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            Behaviour::AlwaysFullThenDrop { bytes } => {
                out.write_all(&rest[..bytes.min(rest.len())])?;
                out.flush()?;
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            Behaviour::DropThenIgnoreRange { bytes } if nth == 1 => {
                out.write_all(&rest[..bytes.min(rest.len())])?;
                out.flush()?;
                let _ = out.shutdown(std::net::Shutdown::Both);
            }
            Behaviour::Slow { chunk, pause } => {
                for piece in rest.chunks(chunk) {
                    out.write_all(piece)?;
                    out.flush()?;
                    std::thread::sleep(pause);
                }
            }
            _ => out.write_all(rest)?,
        }
        Ok(())
    }
}

/// Where the catalog is served in a [`CatalogWorld`].
pub const CATALOG: &str = "/os_list.json";

/// Where a download test runs: a loopback server with a catalog at [`CATALOG`] and one
/// image, and a directory of its own for the cache and any outputs.
pub struct CatalogWorld {
    pub server: Server,
    pub dir: tempfile::TempDir,
}

impl CatalogWorld {
    /// `image` served at `image_path` with `behaviour`, and at [`CATALOG`] the JSON that
    /// `catalog` makes from the server (for its URLs) and the image.
    pub fn new(
        image_path: &str,
        image: Vec<u8>,
        behaviour: Behaviour,
        catalog: impl FnOnce(&Server, &[u8]) -> Vec<u8>,
    ) -> CatalogWorld {
        let server = Server::start();
        server.serve(CATALOG, catalog(&server, &image), Behaviour::Normal);
        server.serve(image_path, image, behaviour);
        CatalogWorld {
            server,
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub fn cache(&self) -> std::path::PathBuf {
        self.dir.path().join("cache")
    }

    /// pinode with this world's catalog and cache, and quick retries.
    pub fn pinode(&self) -> std::process::Command {
        let mut c = super::pinode();
        c.env("PINODE_CATALOG", self.server.url(CATALOG))
            .env("PINODE_CACHE_DIR", self.cache())
            .env("PINODE_HTTP_BACKOFF_MS", "20")
            .env("PINODE_HTTP_TIMEOUT", "5");
        c
    }
}
