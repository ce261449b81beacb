// Harness for the `cmdline` fuzz target, shared with tests/fuzz_regressions.rs through
// include!().
//
// Input: the text of a cmdline.txt, optionally followed by a 0xFF byte (never part of UTF-8
// text) and an edit script, one edit per line:
//   e TOKEN      ensure(TOKEN)
//   s KEY=VALUE  set(KEY, VALUE)
//   r TOKEN      remove(TOKEN)
//   w PREFIX     remove_where(|t| t.starts_with(PREFIX))
// Without a script the edits are the ones `patch` makes. Tokens that profile validation would
// refuse (empty, whitespace, control characters, quotes) are skipped: callers never pass them.

use pinode::bootfs::cmdline::Cmdline;

enum Edit {
    Ensure(String),
    Set(String, String),
    Remove(String),
    RemoveWhere(String),
}

fn is_token(t: &str) -> bool {
    !t.is_empty() && !t.contains('"') && !t.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn default_edits() -> Vec<Edit> {
    vec![
        // pinode's previous tokens taken away, then this node's added.
        Edit::Remove("cgroup_enable=memory".into()),
        Edit::Remove("systemd.run=/boot/firstrun.sh".into()),
        Edit::Ensure("cgroup_memory=1".into()),
        Edit::Ensure("cgroup_enable=memory".into()),
        Edit::Ensure("cgroup_enable=cpuset".into()),
        Edit::Set("cfg80211.ieee80211_regdom".into(), "DE".into()),
        Edit::Set("systemd.run".into(), "/boot/firmware/firstrun.sh".into()),
        Edit::Ensure("systemd.run_success_action=reboot".into()),
        Edit::Set("ds".into(), "nocloud;i=pinode-1".into()),
        Edit::RemoveWhere("init=".into()),
    ]
}

fn parse_edits(script: &str) -> Vec<Edit> {
    let mut edits = Vec::new();
    for line in script.lines() {
        let Some((op, arg)) = line.split_at_checked(1) else {
            continue;
        };
        let arg = arg.strip_prefix(' ').unwrap_or(arg);
        let edit = match op {
            "e" => Edit::Ensure(arg.to_string()),
            "s" => match arg.split_once('=') {
                Some((k, v)) => Edit::Set(k.to_string(), v.to_string()),
                None => continue,
            },
            "r" => Edit::Remove(arg.to_string()),
            "w" => Edit::RemoveWhere(arg.to_string()),
            _ => continue,
        };
        edits.push(edit);
    }
    edits
}

fn tokens(c: &Cmdline) -> Vec<String> {
    c.tokens().map(str::to_string).collect()
}

/// The part of a cmdline.txt after its first line (line ending included).
fn rest_of(text: &str) -> &str {
    match text.find(['\r', '\n']) {
        Some(at) => &text[at..],
        None => "",
    }
}

pub fn run(data: &[u8]) {
    let (text, script) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(text);
    let edits = match script {
        Some(script) => parse_edits(&String::from_utf8_lossy(script)),
        None => default_edits(),
    };

    let mut c = Cmdline::parse(&text);
    assert_eq!(c.render(), text, "parse/render is not the identity");
    for edit in edits {
        let before = tokens(&c);
        let before_text = c.render();
        // Which tokens the edit may touch; every other token must keep its place.
        let touched: Box<dyn Fn(&str) -> bool> = match edit {
            Edit::Ensure(ref t) => {
                if !is_token(t) {
                    continue;
                }
                let changed = c.ensure(t);
                assert_eq!(c.tokens().filter(|x| x == t).count(), 1, "ensure({t:?})");
                assert!(c.contains(t));
                assert_eq!(changed, c.render() != before_text, "ensure({t:?}) result");
                let t = t.clone();
                Box::new(move |x| x == t)
            }
            Edit::Set(ref k, ref v) => {
                if !is_token(k) || k.contains('=') || !(v.is_empty() || is_token(v)) {
                    continue;
                }
                let changed = c.set(k, v);
                let wanted = format!("{k}={v}");
                let is_key = |x: &str| {
                    x.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with('='))
                };
                let keyed: Vec<String> = c
                    .tokens()
                    .filter(|x| is_key(x))
                    .map(str::to_string)
                    .collect();
                assert_eq!(keyed, [wanted], "set({k:?}, {v:?})");
                assert_eq!(c.value_of(k), Some(v.as_str()), "set({k:?}, {v:?})");
                assert_eq!(
                    changed,
                    c.render() != before_text,
                    "set({k:?}, {v:?}) result"
                );
                let k = k.clone();
                Box::new(move |x| {
                    x.strip_prefix(k.as_str())
                        .is_some_and(|r| r.starts_with('='))
                })
            }
            Edit::Remove(ref t) => {
                let n = before.iter().filter(|x| *x == t).count();
                assert_eq!(c.remove(t), n, "remove({t:?})");
                assert!(!c.contains(t));
                let t = t.clone();
                Box::new(move |x| x == t)
            }
            Edit::RemoveWhere(ref p) => {
                let n = before.iter().filter(|x| x.starts_with(p.as_str())).count();
                let p2 = p.clone();
                assert_eq!(c.remove_where(move |x| x.starts_with(p2.as_str())), n);
                assert!(!c.tokens().any(|x| x.starts_with(p.as_str())));
                let p = p.clone();
                Box::new(move |x| x.starts_with(p.as_str()))
            }
        };
        let kept_before: Vec<&String> = before.iter().filter(|x| !touched(x)).collect();
        let after = tokens(&c);
        let kept_after: Vec<&String> = after.iter().filter(|x| !touched(x)).collect();
        assert_eq!(kept_before, kept_after, "untouched tokens moved");

        // What is written is read back as the same tokens, and only the first line changes.
        let rendered = c.render();
        let again = Cmdline::parse(&rendered);
        assert_eq!(
            again.render(),
            rendered,
            "render/parse/render is not stable"
        );
        assert_eq!(
            tokens(&again),
            after,
            "the rendered line reads back differently"
        );
        assert_eq!(
            rest_of(&rendered),
            rest_of(&text),
            "lines after the first changed"
        );
        if !after.is_empty() {
            assert!(
                !rendered.starts_with([' ', '\t']) || text.starts_with([' ', '\t']),
                "the line now starts with whitespace: {rendered:?}"
            );
        }
    }
}
