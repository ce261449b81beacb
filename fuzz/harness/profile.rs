// Harness for the `profile` fuzz target, shared with tests/fuzz_regressions.rs through
// include!(): what `pinode profile check FILE` does with the text of FILE, without the file.

use std::path::Path;

use pinode::profile::{FieldError, LoadedProfile, ProfileError};

const FILE: &str = "fuzz/profile.yaml";

fn check_error(e: &FieldError, text: &str) {
    assert_eq!(e.file, Path::new(FILE), "{e}");
    assert!(!e.message.is_empty(), "an error without a message: {e:?}");
    let shown = e.to_string();
    assert!(shown.starts_with(FILE), "{shown}");
    // One line each, and nothing a terminal would act on (keys and values reach messages).
    assert!(
        !shown.chars().any(char::is_control),
        "a control character in an error: {e:?}"
    );
    if let Some(p) = e.position {
        // YAML breaks lines at \n, \r\n and a lone \r (1.1 also at NEL, LS and PS), and the
        // parsers may point just past the last line at end of input.
        let breaks = text
            .chars()
            .filter(|c| matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}'))
            .count();
        let lines = breaks + 2;
        assert!(
            p.line >= 1 && p.line <= lines,
            "line {} of {lines}: {e:?}",
            p.line
        );
        assert!(p.column >= 1, "{e:?}");
    }
}

pub fn run(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match LoadedProfile::parse(Path::new(FILE), &text) {
        Err(ProfileError::Invalid(errors)) => {
            assert!(!errors.is_empty(), "Invalid with no error");
            for e in &errors {
                check_error(e, &text);
            }
        }
        Err(ProfileError::Input(_)) => panic!("parse() read a file"),
        Ok(loaded) => {
            for w in &loaded.warnings {
                check_error(w, &text);
            }
            assert!(!loaded.nodes.is_empty(), "a valid profile without nodes");
            for node in &loaded.nodes {
                assert!(
                    pinode::profile::values::hostname(&node.hostname).is_ok(),
                    "{}",
                    node.hostname
                );
                assert!(loaded.node(&node.hostname).is_some());
            }
            let mut names: Vec<&str> = loaded.nodes.iter().map(|n| n.hostname.as_str()).collect();
            names.sort_unstable();
            let before = names.len();
            names.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
            assert_eq!(names.len(), before, "two nodes with one hostname");
            // The rest of `profile check`.
            let _ = loaded.init_override();
            let _ = loaded.base_dir();
            let _ = loaded.error_at("nodes[0].hostname", "x").to_string();
            if let Some(plan) = pinode::plan::cluster::ClusterPlan::of(&loaded, pinode::edge::settings()) {
                for node in &loaded.nodes {
                    let _ = plan.distribution.describe_role(plan.role_of(&node.hostname), plan.ha).to_string();
                }
                let _ = (plan.api.len(), plan.token.to_string());
            }
        }
    }
}
