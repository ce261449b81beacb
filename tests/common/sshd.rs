//! A real OpenSSH server for the tests of commands that reach a node over SSH
//! (`pinode kubeconfig`, `pinode status`): sshd on 127.0.0.1 with the host key pinode made
//! for the node, a login user of this machine, the test's client key in an ssh-agent, and
//! sshd's ForceCommand set to a named stand-in for what the node would run.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::run;

/// Processes a test started, ended (by their own ids) when it ends.
pub struct Started(pub Vec<Child>);

impl Drop for Started {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Creates the system account `user` when this machine has none.
pub fn ensure_user(user: &str) {
    if Command::new("id")
        .arg(user)
        .output()
        .unwrap()
        .status
        .success()
    {
        return;
    }
    run(Command::new("useradd")
        .args([
            "--system",
            "--no-create-home",
            "--shell",
            "/bin/sh",
            "--password",
            "*",
        ])
        .arg(user));
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn wait_for_port(port: u16) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn chmod(path: &Path, mode: &str) {
    run(Command::new("chmod").arg(mode).arg(path));
}

/// Makes the client key `dir/client` (and `dir/authorized_keys` holding it); its public key.
pub fn client_key(dir: &Path) -> String {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "test-client", "-f"])
        .arg(dir.join("client")));
    let public = std::fs::read_to_string(dir.join("client.pub")).unwrap();
    std::fs::write(dir.join("authorized_keys"), &public).unwrap();
    public
}

/// Starts sshd on a free port of 127.0.0.1 with `host_key`, letting only `user` in with the
/// keys of `dir/authorized_keys`, every session running `force_command`. Its log is
/// `dir/sshd-PORT.log`. The port.
pub fn start_sshd(
    dir: &Path,
    host_key: &Path,
    user: &str,
    force_command: &Path,
    started: &mut Started,
) -> u16 {
    assert!(
        Path::new("/usr/sbin/sshd").exists(),
        "sshd is missing: apt-get install openssh-server (.ci/run does)"
    );
    let port = free_port();
    let config = dir.join(format!("sshd-{port}.config"));
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             UsePAM no\nStrictModes no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             AllowUsers {user}\nForceCommand {}\n",
            host_key.display(),
            dir.join("authorized_keys").display(),
            dir.join(format!("sshd-{port}.pid")).display(),
            force_command.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let sshd = Command::new("/usr/sbin/sshd")
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("sshd-{port}.log"))).unwrap())
        .spawn()
        .unwrap();
    started.0.push(sshd);
    wait_for_port(port);
    port
}

/// Starts an ssh-agent at `dir/agent.sock` holding `dir/client`; the socket.
pub fn start_agent(dir: &Path, started: &mut Started) -> PathBuf {
    let sock = dir.join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    started.0.push(agent);
    // The socket file appears at bind(), before the agent listens: until then a connection
    // is refused (seen once under load), so ssh-add is retried until it gets through.
    let start = Instant::now();
    loop {
        let out = Command::new("ssh-add")
            .env("SSH_AUTH_SOCK", &sock)
            .arg(dir.join("client"))
            .output()
            .unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no ssh-agent: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sock
}
