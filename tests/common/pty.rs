//! The wizard in a pseudo-terminal, as a person would drive it.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use expectrl::Expect;
use expectrl::session::OsSession;

/// The cluster questions, in the order the wizard asks them, each answered with its
/// default and no agents.
pub const CLUSTER_DEFAULTS: [(&str, &str); 5] = [
    ("Cluster name", "\r"),
    ("How many servers", "\r"),
    ("Server hostnames", "\r"),
    ("How many agents", "0\r"),
    ("K3s channel or version", "\r"),
];

/// `pinode wizard` in `cwd` for `alice` with home `home`, on an xterm, not in CI.
pub fn wizard_command(cwd: &Path, home: &Path) -> Command {
    let mut cmd = super::pinode();
    cmd.arg("wizard")
        .current_dir(cwd)
        .env("HOME", home)
        .env("USER", "alice")
        .env("TERM", "xterm")
        .env_remove("CI");
    cmd
}

/// `cmd` in a terminal, each wait at most a minute.
pub fn spawn(cmd: Command) -> OsSession {
    let mut s = OsSession::spawn(cmd).unwrap();
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s
}

/// Waits for `prompt`, then types `answer`.
pub fn answer(s: &mut OsSession, prompt: &str, answer: &str) {
    s.expect(prompt)
        .unwrap_or_else(|e| panic!("waiting for {prompt:?}: {e}"));
    s.send(answer).unwrap();
}

/// [`answer`] for each (prompt, answer) in turn.
pub fn answer_all(s: &mut OsSession, answers: &[(&str, &str)]) {
    for (prompt, text) in answers {
        answer(s, prompt, text);
    }
}

/// Asserts that `text` does not appear within `wait` (a question not yet answered shows
/// nothing new); the next wait is a minute again.
pub fn absent(s: &mut OsSession, text: &str, wait: Duration) {
    s.set_expect_timeout(Some(wait));
    let seen = s.expect(text);
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    match seen {
        Err(expectrl::Error::ExpectTimeout) => {}
        Ok(_) => panic!("{text:?} appeared within {wait:?}"),
        Err(e) => panic!("waiting for {text:?} not to appear: {e}"),
    }
}

/// Waits for `text` and returns what the terminal showed before it (escapes included).
pub fn before(s: &mut OsSession, text: &str) -> String {
    let found = s
        .expect(text)
        .unwrap_or_else(|e| panic!("waiting for {text:?}: {e}"));
    String::from_utf8_lossy(found.before()).into_owned()
}
