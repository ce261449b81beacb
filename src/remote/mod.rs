//! Commands on a node over SSH: the OpenSSH client as a subprocess, with pinode's
//! `known_hosts` file and strict checking.
//!
//! Why the OpenSSH client: it already has the user's credentials (ssh-agent, `~/.ssh` keys,
//! `~/.ssh/config`), and an SSH implementation of pinode's own would have to redo all of
//! that. Why strict checking with pinode's file: pinode made every node's host key (see
//! [`crate::plan::hostkey`]), so a node that shows another key is not that node; trusting
//! the first key seen would defeat that. `HostKeyAlias` makes the check use the node's name
//! even when a test (or `--address`) connects to an IP address and port.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// ssh's own exit status for its errors (connection, authentication, host key).
const SSH_FAILURE: i32 = 255;

/// What ssh says is kept to its last this many bytes: enough for its messages, bounded.
const MAX_STDERR: u64 = 64 * 1024;

/// The longest line of ssh's an error quotes (characters).
const MAX_SAID: usize = 300;

/// A node to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The node's hostname: the name its key has in pinode's known_hosts.
    pub host: String,
    /// Where to connect: `HOST.local` by default, or an `--address` override.
    pub address: String,
    pub port: Option<u16>,
    /// The login user (the profile's user of that node).
    pub user: String,
}

impl Target {
    /// Node `host`, logged into as `user`, reached at `HOST.local` (mDNS, as a Pi answers
    /// out of the box) unless one of `overrides` gives it an address; its key is checked
    /// under `host` either way.
    pub fn node(host: &str, user: &str, overrides: &[AddressOverride]) -> Target {
        let given = overrides.iter().find(|a| a.host == host);
        Target {
            host: host.to_string(),
            address: given.map_or_else(|| format!("{host}.local"), |a| a.address.clone()),
            port: given.and_then(|a| a.port),
            user: user.to_string(),
        }
    }
}

/// `--address HOST=IP[:PORT]`: where to reach a node instead of `HOST.local`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressOverride {
    pub host: String,
    pub address: String,
    pub port: Option<u16>,
}

impl std::str::FromStr for AddressOverride {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let usage =
            || format!("--address {s:?}: expected HOST=IP[:PORT], e.g. node1=192.0.2.7:2222");
        let (host, rest) = s.split_once('=').ok_or_else(usage)?;
        if host.is_empty() || rest.is_empty() {
            return Err(usage());
        }
        let (address, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (addr, after) = v6.split_once(']').ok_or_else(usage)?;
            match after.strip_prefix(':') {
                Some(p) => (addr, Some(p)),
                None if after.is_empty() => (addr, None),
                None => return Err(usage()),
            }
        } else {
            match rest.split_once(':') {
                Some((addr, p)) if !p.contains(':') => (addr, Some(p)),
                Some(_) => (rest, None),
                None => (rest, None),
            }
        };
        let ip: std::net::IpAddr = address
            .parse()
            .map_err(|_| format!("--address {s:?}: {address:?} is not an IP address"))?;
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("--address {s:?}: {p:?} is not a port (1-65535)"))?,
            ),
        };
        Ok(AddressOverride {
            host: host.to_string(),
            address: ip.to_string(),
            port,
        })
    }
}

/// Why a command over SSH failed. The messages never hold the command's output.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error(
        "the host key of {host} differs from the one pinode generated: {known_hosts} holds the \
         key pinode made for it, so this is another machine or the node was flashed from \
         another pinode state; ssh said: {said}"
    )]
    HostKeyMismatch {
        host: String,
        known_hosts: String,
        said: String,
    },
    #[error(
        "pinode has no host key for {host} in {known_hosts}: prepare or flash the node with \
         this profile (and this state directory) first; ssh said: {said}"
    )]
    HostKeyUnknown {
        host: String,
        known_hosts: String,
        said: String,
    },
    #[error(
        "cannot log in to {host} as {user}: load the key of the profile's \
         ssh_authorized_keys into ssh-agent or ~/.ssh; ssh said: {said}"
    )]
    Authentication {
        host: String,
        user: String,
        said: String,
    },
    #[error("cannot reach {host} at {address}: {said}")]
    Unreachable {
        host: String,
        address: String,
        said: String,
    },
    #[error("cannot run ssh (the OpenSSH client): {0}")]
    NoClient(std::io::Error),
    #[error("reading what `{command}` on {host} sent: {source}")]
    Read {
        host: String,
        command: String,
        source: std::io::Error,
    },
    #[error("`{command}` on {host} sent more than {limit} bytes; stopped")]
    TooLong {
        host: String,
        command: String,
        limit: u64,
    },
    #[error("`{command}` on {host} failed (exit status {status}): {said}")]
    Failed {
        host: String,
        command: String,
        status: String,
        said: String,
    },
}

/// The OpenSSH client, set up for pinode's known_hosts.
#[derive(Debug, Clone)]
pub struct Ssh {
    known_hosts: PathBuf,
    /// ssh's ConnectTimeout (seconds): how long an unreachable node can hold a command.
    connect_timeout: u64,
}

impl Ssh {
    /// Connections that trust exactly the keys in `known_hosts`.
    pub fn new(known_hosts: PathBuf) -> Ssh {
        Ssh {
            known_hosts,
            connect_timeout: 10,
        }
    }

    /// The same, giving up on a connection after `seconds` (at least 1): `pinode status`
    /// polls within its own timeout.
    pub fn connect_timeout(mut self, seconds: u64) -> Ssh {
        self.connect_timeout = seconds.max(1);
        self
    }

    /// The ssh command line for `command` on `target`, without running it.
    pub fn command(&self, target: &Target, command: &str) -> Command {
        let mut c = Command::new("ssh");
        let mut known = std::ffi::OsString::from("UserKnownHostsFile=");
        known.push(&self.known_hosts);
        c.args(["-o", "StrictHostKeyChecking=yes", "-o"])
            .arg(known)
            .args([
                "-o",
                "GlobalKnownHostsFile=/dev/null",
                // Nor may the user's ssh config add other ways to trust a key: a command
                // that prints known hosts, or SSHFP records in DNS.
                "-o",
                "KnownHostsCommand=none",
                "-o",
                "VerifyHostKeyDNS=no",
                // ssh would otherwise add the node's other host keys to pinode's file.
                "-o",
                "UpdateHostKeys=no",
                "-o",
                "BatchMode=yes",
                "-o",
                "CheckHostIP=no",
                "-o",
            ])
            .arg(format!("ConnectTimeout={}", self.connect_timeout))
            .args([
                "-o",
                "ServerAliveInterval=5",
                "-o",
                "ServerAliveCountMax=3",
                "-o",
                "LogLevel=ERROR",
                "-o",
            ])
            .arg(format!("HostKeyAlias={}", target.host))
            .arg("-l")
            .arg(&target.user);
        if let Some(port) = target.port {
            c.arg("-p").arg(port.to_string());
        }
        c.arg("--").arg(&target.address).arg(command);
        c.stdin(Stdio::null());
        // Under sudo, ssh runs as the invoking user: their agent and ~/.ssh keys.
        let invoker = crate::invoker::Invoker::current();
        if invoker.sudo {
            use std::os::unix::process::CommandExt;
            c.uid(invoker.uid).gid(invoker.gid);
        }
        c
    }

    /// Runs `command` on `target`; its standard output, at most `limit` bytes.
    pub fn run(&self, target: &Target, command: &str, limit: u64) -> Result<Vec<u8>, RemoteError> {
        let mut child = self
            .command(target, command)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(RemoteError::NoClient)?;
        let stderr = child.stderr.take();
        let errors = std::thread::spawn(move || {
            let mut text = Vec::new();
            // All of it is read (a full pipe would stop ssh, and with it the standard output
            // being read), and only the last MAX_STDERR bytes kept: ssh's reason comes last.
            if let Some(mut e) = stderr {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = e.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    text.extend_from_slice(&chunk[..n]);
                    if text.len() as u64 > 2 * MAX_STDERR {
                        let cut = text.len() - MAX_STDERR as usize;
                        text.drain(..cut);
                    }
                }
            }
            text
        });
        let mut out = Vec::new();
        // A read that fails part-way would pass off the part read as the whole answer.
        let read = match child.stdout.take() {
            Some(stdout) => stdout.take(limit + 1).read_to_end(&mut out).map(|_| ()),
            None => Ok(()),
        };
        let too_long = out.len() as u64 > limit;
        if too_long || read.is_err() {
            let _ = child.kill();
        }
        let status = child.wait().map_err(RemoteError::NoClient)?;
        let said = errors.join().unwrap_or_default();
        if let Err(source) = read {
            return Err(RemoteError::Read {
                host: target.host.clone(),
                command: command.to_string(),
                source,
            });
        }
        if too_long {
            return Err(RemoteError::TooLong {
                host: target.host.clone(),
                command: command.to_string(),
                limit,
            });
        }
        if status.success() {
            return Ok(out);
        }
        Err(self.explain(target, command, status, &said))
    }

    /// The error for a failed ssh, from its exit status and what it said.
    fn explain(
        &self,
        target: &Target,
        command: &str,
        status: std::process::ExitStatus,
        said: &[u8],
    ) -> RemoteError {
        let text = String::from_utf8_lossy(said);
        let last = text
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty() && !l.starts_with("@@@"))
            .unwrap_or("(nothing)");
        // One line of ssh's, shortened: the error is one readable line.
        let short: String = match last.char_indices().nth(MAX_SAID) {
            Some((at, _)) => format!("{}…", &last[..at]),
            None => last.to_string(),
        };
        let said_line = crate::ui::terminal_safe(&short).into_owned();
        let host = target.host.clone();
        let known_hosts = self.known_hosts.display().to_string();
        if status.code() == Some(SSH_FAILURE) {
            if text.contains("REMOTE HOST IDENTIFICATION HAS CHANGED")
                || text.contains("differs from the key for the IP")
            {
                return RemoteError::HostKeyMismatch {
                    host,
                    known_hosts,
                    said: said_line,
                };
            }
            if text.contains("Host key verification failed") {
                return RemoteError::HostKeyUnknown {
                    host,
                    known_hosts,
                    said: said_line,
                };
            }
            if text.contains("Permission denied") {
                return RemoteError::Authentication {
                    host,
                    user: target.user.clone(),
                    said: said_line,
                };
            }
            return RemoteError::Unreachable {
                host,
                address: match target.port {
                    Some(p) => format!("{}:{p}", target.address),
                    None => target.address.clone(),
                },
                said: said_line,
            };
        }
        RemoteError::Failed {
            host,
            command: command.to_string(),
            status: status
                .code()
                .map_or_else(|| "killed".to_string(), |c| c.to_string()),
            said: said_line,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_with_and_without_port() {
        let a: AddressOverride = "n1=127.0.0.1:2222".parse().unwrap();
        assert_eq!(
            (a.host.as_str(), a.address.as_str(), a.port),
            ("n1", "127.0.0.1", Some(2222))
        );
        let b: AddressOverride = "n1=192.0.2.7".parse().unwrap();
        assert_eq!(b.port, None);
        let c: AddressOverride = "n1=[::1]:22".parse().unwrap();
        assert_eq!((c.address.as_str(), c.port), ("::1", Some(22)));
        let d: AddressOverride = "n1=::1".parse().unwrap();
        assert_eq!((d.address.as_str(), d.port), ("::1", None));
        for bad in [
            "n1",
            "=1.2.3.4",
            "n1=",
            "n1=host:22",
            "n1=1.2.3.4:0",
            "n1=1.2.3.4:x",
        ] {
            assert!(bad.parse::<AddressOverride>().is_err(), "{bad}");
        }
    }
}
