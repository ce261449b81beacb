//! Which K3s flags `server_args` and `agent_args` may name, and what they turn into.
//!
//! K3s reads pinode's `config.yaml` as flags. A flag the command does not have is not
//! harmless: in an agent's config a server-only flag stops the agent from starting, and a
//! misspelt server flag (`--disabel=traefik`) is skipped with a log line nobody reads, so
//! traefik stays on. The flags of each command are kept as data in
//! `data/k3s/flags.txt` (its header names the K3s sources and version line), embedded in the
//! binary and parsed once; `profile check` compares every argument with them.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::{Value, json};

/// The flag list, from the repository's data directory.
const FLAGS_TXT: &str = include_str!("../../../data/k3s/flags.txt");

/// Which K3s command reads the arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Command {
    Server,
    Agent,
}

impl Command {
    fn name(self) -> &'static str {
        match self {
            Command::Server => "server",
            Command::Agent => "agent",
        }
    }
}

/// What a flag takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// `--flag`, or `--flag=true|false`.
    Bool,
    /// `--flag=V` or `--flag V`.
    Value,
    /// A value that may be given several times.
    List,
}

/// One flag of the list.
#[derive(Debug, Clone)]
struct Flag {
    name: &'static str,
    kind: Kind,
    server: bool,
    agent: bool,
}

impl Flag {
    fn accepted_by(&self, command: Command) -> bool {
        match command {
            Command::Server => self.server,
            Command::Agent => self.agent,
        }
    }
}

/// A line of the flag list that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("data/k3s/flags.txt:{line}: {message}")]
pub(crate) struct FlagListError {
    line: usize,
    message: String,
}

/// The flags of both commands, looked up by name or alias.
#[derive(Debug)]
pub(crate) struct FlagSet {
    /// The K3s version line the list was derived for, e.g. `v1.33`.
    pub(crate) line: &'static str,
    flags: Vec<Flag>,
    by_name: HashMap<&'static str, usize>,
}

impl FlagSet {
    /// Parses the flag list format described in `data/k3s/flags.txt`.
    fn parse(text: &'static str) -> Result<FlagSet, FlagListError> {
        let mut set = FlagSet {
            line: "",
            flags: Vec::new(),
            by_name: HashMap::new(),
        };
        for (n, raw) in text.lines().enumerate() {
            let line = n + 1;
            let err = |message: String| FlagListError { line, message };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let fields: Vec<&str> = content.split_whitespace().collect();
            if let ["line", version] = fields[..] {
                set.line = version;
                continue;
            }
            let [role, kind, names] = fields[..] else {
                return Err(err(format!(
                    "expected ROLE KIND NAME[,ALIAS...], found {} fields",
                    fields.len()
                )));
            };
            let (server, agent) = match role {
                "both" => (true, true),
                "server" => (true, false),
                "agent" => (false, true),
                other => return Err(err(format!("unknown role {other:?}"))),
            };
            let kind = match kind {
                "bool" => Kind::Bool,
                "value" => Kind::Value,
                "list" => Kind::List,
                other => return Err(err(format!("unknown kind {other:?}"))),
            };
            let mut names = names.split(',');
            let name = names.next().unwrap_or("");
            let aliases: Vec<&'static str> = names.collect();
            for n in std::iter::once(name).chain(aliases.iter().copied()) {
                if !valid_name(n) {
                    return Err(err(format!("{n:?} is not a flag name")));
                }
                if set.by_name.insert(n, set.flags.len()).is_some() {
                    return Err(err(format!("{n} is listed twice")));
                }
            }
            set.flags.push(Flag {
                name,
                kind,
                server,
                agent,
            });
        }
        if set.line.is_empty() {
            return Err(FlagListError {
                line: 0,
                message: "no `line vX.Y` entry naming the K3s version line".into(),
            });
        }
        Ok(set)
    }

    /// Whether a profile's K3s `version` (v1.33.5+k3s1) or `channel` (v1.33, stable)
    /// belongs to another version line than the list: `None` when it is the same or a
    /// moving channel (stable, latest), else that line.
    pub(crate) fn other_line<'a>(&self, pinned: &'a str) -> Option<&'a str> {
        if !pinned.starts_with('v') {
            return None;
        }
        let mut dots = pinned.match_indices('.').map(|(i, _)| i);
        let end = match (dots.next(), dots.next()) {
            (Some(_), Some(second)) => second,
            (Some(_), None) => pinned.find(['+', '-']).unwrap_or(pinned.len()),
            _ => return None,
        };
        let line = &pinned[..end];
        (line != self.line).then_some(line)
    }

    /// The flag called `name` (its name or an alias).
    fn get(&self, name: &str) -> Option<&Flag> {
        self.by_name.get(name).map(|&i| &self.flags[i])
    }

    /// The flag of `command` closest to a misspelt `name`, if one is close enough to be
    /// what was meant.
    fn suggest(&self, name: &str, command: Command) -> Option<&'static str> {
        let limit = if name.len() < 6 { 1 } else { 2 };
        self.flags
            .iter()
            .filter(|f| f.accepted_by(command))
            .map(|f| (strsim::levenshtein(name, f.name), f.name))
            .filter(|&(d, _)| d <= limit)
            .min()
            .map(|(_, n)| n)
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The embedded list, parsed on first use.
pub(crate) fn flags() -> Result<&'static FlagSet, FlagListError> {
    static SET: OnceLock<Result<FlagSet, FlagListError>> = OnceLock::new();
    SET.get_or_init(|| FlagSet::parse(FLAGS_TXT))
        .as_ref()
        .map_err(Clone::clone)
}

/// Whether `command` has a flag called `name` (not an alias): the keys pinode writes into
/// config.yaml are checked against the list by the tests.
#[cfg(test)]
pub(crate) fn accepts(name: &str, command: Command) -> bool {
    flags()
        .ok()
        .and_then(|set| set.get(name))
        .is_some_and(|f| f.name == name && f.accepted_by(command))
}

/// One argument that is wrong, by its index in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError {
    pub(crate) index: usize,
    pub(crate) message: String,
}

/// Turns `args` into `(flag name, value)` pairs for `command`'s config.yaml: aliases become
/// the flag's name, `--flag value` (in one item, or as the next item) becomes its value,
/// and a bare boolean flag becomes `true`. Every wrong argument is reported (never its
/// value, which may be a secret such as `--etcd-s3-secret-key`), with a suggestion for a
/// near miss. Flags pinode sets itself (`managed`) are refused.
pub(crate) fn parse_args(
    args: &[String],
    command: Command,
    managed: &[&str],
) -> Result<Vec<(String, Value)>, Vec<ArgError>> {
    let set = match flags() {
        Ok(set) => set,
        Err(e) => {
            return Err(vec![ArgError {
                index: 0,
                message: format!("pinode's K3s flag list is broken: {e}"),
            }]);
        }
    };
    let mut out = Vec::new();
    let mut errors = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let index = i;
        let arg = args[i].trim();
        i += 1;
        let mut fail = |message: String| errors.push(ArgError { index, message });
        let Some(body) = arg
            .strip_prefix("--")
            .or_else(|| arg.strip_prefix('-').filter(|b| !b.starts_with('-')))
        else {
            // Not quoted: an item without a dash is likely a value, and values can be
            // secrets.
            fail(
                "this item is not a K3s flag (expected --name=value, --name value or --name; \
                 a value goes right after its flag)"
                    .into(),
            );
            continue;
        };
        let (name, inline) = match body.find(['=', ' ', '\t']) {
            Some(at) => (&body[..at], Some(body[at + 1..].trim_start())),
            None => (body, None),
        };
        if !valid_name(name) {
            fail(format!(
                "{} is not a K3s flag (expected --name=value, --name value or --name)",
                crate::ui::quoted(name)
            ));
            continue;
        }
        let Some(flag) = set.get(name) else {
            let hint = set
                .suggest(name, command)
                .map(|s| format!("; did you mean --{s}?"))
                .unwrap_or_default();
            fail(format!(
                "--{name} is not a K3s {} flag (K3s would skip it){hint}",
                command.name()
            ));
            continue;
        };
        if managed.contains(&flag.name) {
            fail(format!(
                "--{} is set by pinode from the cluster plan; remove it from the extra args",
                flag.name
            ));
            continue;
        }
        if !flag.accepted_by(command) {
            let (only, list) = match command {
                Command::Server => ("agent", "agent_args"),
                Command::Agent => ("server", "server_args"),
            };
            fail(format!(
                "--{} is a K3s {only}-only flag: the {} refuses to start with it; move it to {list}",
                flag.name,
                command.name()
            ));
            continue;
        }
        let value = match (flag.kind, inline) {
            (Kind::Bool, None) => json!(true),
            (Kind::Bool, Some(v)) if matches!(v, "true" | "false") => json!(v),
            (Kind::Bool, Some(_)) => {
                fail(format!(
                    "--{} is a switch: give it alone, or as --{}=true or --{}=false",
                    flag.name, flag.name, flag.name
                ));
                continue;
            }
            (_, Some("")) => {
                fail(format!(
                    "--{} needs a value: --{}=VALUE",
                    flag.name, flag.name
                ));
                continue;
            }
            (_, Some(v)) => json!(v),
            (_, None) => match args.get(i).map(|a| a.trim()) {
                Some(next) if !next.starts_with('-') => {
                    i += 1;
                    json!(next)
                }
                _ => {
                    fail(format!(
                        "--{} needs a value: --{}=VALUE",
                        flag.name, flag.name
                    ));
                    continue;
                }
            },
        };
        out.push((flag.name.to_string(), value));
    }
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_embedded_list_parses_and_knows_each_role() {
        let set = flags().unwrap();
        let disable = set.get("disable").unwrap();
        assert!(disable.server && !disable.agent);
        assert_eq!(disable.kind, Kind::List);
        let init = set.get("cluster-init").unwrap();
        assert!(init.server && !init.agent && init.kind == Kind::Bool);
        let label = set.get("node-label").unwrap();
        assert!(label.server && label.agent);
        let lb = set.get("disable-apiserver-lb").unwrap();
        assert!(!lb.server && lb.agent);
        assert_eq!(set.get("d").unwrap().name, "data-dir");
        assert_eq!(set.get("o").unwrap().name, "write-kubeconfig");
        assert!(set.get("disabel").is_none());
        assert_eq!(set.line, "v1.33");
        assert_eq!(set.other_line("v1.33.5+k3s1"), None);
        assert_eq!(set.other_line("v1.33"), None);
        assert_eq!(set.other_line("stable"), None);
        assert_eq!(set.other_line("v1.30.2+k3s1"), Some("v1.30"));
        assert_eq!(set.other_line("v1.34"), Some("v1.34"));
    }

    #[test]
    fn the_parser_rejects_bad_lists() {
        assert_eq!(
            FlagSet::parse("line v1.33\nserver list a\nboth bool a")
                .unwrap_err()
                .line,
            3
        );
        assert!(FlagSet::parse("both bool a").is_err(), "no version line");
        assert!(FlagSet::parse("nobody bool a").is_err());
        assert!(FlagSet::parse("both maybe a").is_err());
        assert!(FlagSet::parse("both bool A").is_err());
        assert!(FlagSet::parse("both bool").is_err());
    }

    #[test]
    fn arguments_become_config_entries() {
        let parsed = parse_args(
            &args(&[
                "--disable=traefik",
                "--disable servicelb",
                "--node-label",
                "zone=a",
                "--secrets-encryption",
                "-d",
                "/data",
            ]),
            Command::Server,
            &[],
        )
        .unwrap();
        assert_eq!(
            parsed,
            vec![
                ("disable".into(), json!("traefik")),
                ("disable".into(), json!("servicelb")),
                ("node-label".into(), json!("zone=a")),
                ("secrets-encryption".into(), json!(true)),
                ("data-dir".into(), json!("/data")),
            ]
        );
    }

    #[test]
    fn wrong_arguments_are_all_reported() {
        let errors = parse_args(
            &args(&[
                "--disabel=traefik",
                "--node-label=a=b",
                "--cluster-reset",
                "--token=x",
                "--kubelet-arg",
                "--nonsense-flag-xyz",
                "--etcd-s3-secret-key",
            ]),
            Command::Agent,
            &["token"],
        )
        .unwrap_err();
        let at: Vec<usize> = errors.iter().map(|e| e.index).collect();
        assert_eq!(at, vec![0, 2, 3, 4, 5, 6]);
        assert!(errors[0].message.contains("not a K3s agent flag"));
        let server = parse_args(&args(&["--disabel=traefik"]), Command::Server, &[]).unwrap_err();
        assert!(
            server[0].message.contains("did you mean --disable?"),
            "{}",
            server[0].message
        );
        assert!(errors[1].message.contains("server-only"));
        assert!(errors[2].message.contains("set by pinode"));
        assert!(errors[3].message.contains("needs a value"));
        assert!(!errors[4].message.contains("did you mean"));
        let odd = parse_args(
            &args(&["hunter2", "--disable=", "--disable"]),
            Command::Server,
            &[],
        )
        .unwrap_err();
        assert_eq!(odd.len(), 3);
        assert!(!odd[0].message.contains("hunter2"), "{}", odd[0].message);
        assert!(odd[1].message.contains("needs a value"));
        assert!(odd[2].message.contains("needs a value"));
        let secret = parse_args(
            &args(&["--etcd-s3-secret-kee=hunter2"]),
            Command::Server,
            &[],
        )
        .unwrap_err();
        assert!(!secret[0].message.contains("hunter2"));
    }

    /// The limits in `suggest` assume plain Levenshtein (a swap of two letters counts 2).
    #[test]
    fn distances() {
        assert_eq!(strsim::levenshtein("disabel", "disable"), 2);
        assert_eq!(strsim::levenshtein("", "abc"), 3);
        assert_eq!(strsim::levenshtein("tls-san", "tls-san"), 0);
    }
}
