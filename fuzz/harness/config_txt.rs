// Harness for the `config_txt` fuzz target, shared with tests/fuzz_regressions.rs through
// include!().
//
// Input: the text of a config.txt, optionally followed by a 0xFF byte (never part of UTF-8
// text) and the node's `config_extra` lines, one per line; a first script line `!` asks for
// no arm_64bit. Without a script: arm_64bit plus two usual extra lines. Lines that profile
// validation refuses are skipped: they never reach the editor.
//
// Checked against an independent reading of the format: the body is the file without
// pinode's blocks (marker lines paired like brackets), byte for byte; patching appends
// exactly one block; patching again is a no-op.

use pinode::bootfs::config_txt::{BLOCK_BEGIN, BLOCK_END, ConfigTxt};

fn valid_extra(line: &str) -> bool {
    let trimmed = line.trim();
    !line
        .chars()
        .any(|c| c == '\n' || c == '\r' || (c.is_control() && c != '\t'))
        && !trimmed.starts_with('[')
        && !trimmed.starts_with("# BEGIN pinode")
        && trimmed != "# END pinode"
}

fn marker(line: &str) -> Option<bool> {
    match line.trim_end_matches(['\r', '\n']) {
        l if l == BLOCK_BEGIN => Some(true),
        l if l == BLOCK_END => Some(false),
        _ => None,
    }
}

/// The body and the block lines of `text`, read independently of the editor: the markers
/// pair up like brackets, so take out, again and again, the first END that has a BEGIN
/// before it, with the latest such BEGIN and the lines between.
fn reference(text: &str) -> (String, Vec<String>) {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let mut block = Vec::new();
    loop {
        let first_begin = lines.iter().position(|l| marker(l) == Some(true));
        let Some(end) =
            first_begin.and_then(|b| (b..lines.len()).find(|&j| marker(lines[j]) == Some(false)))
        else {
            break;
        };
        let begin = (0..end)
            .rev()
            .find(|&i| marker(lines[i]) == Some(true))
            .expect("a BEGIN");
        for l in &lines[begin + 1..end] {
            let l = l.trim_end_matches(['\r', '\n']);
            if l != "[all]" {
                block.push(l.to_string());
            }
        }
        lines.drain(begin..=end);
    }
    (lines.concat(), block)
}

pub fn run(data: &[u8]) {
    let (text, script) = match data.iter().position(|&b| b == 0xff) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let text = String::from_utf8_lossy(text);
    let (arm_64bit, extra): (bool, Vec<String>) = match script {
        Some(script) => {
            let script = String::from_utf8_lossy(script);
            let mut lines = script.split('\n').peekable();
            let arm_64bit = lines.next_if_eq(&"!").is_none();
            (
                arm_64bit,
                lines
                    .filter(|l| valid_extra(l))
                    .map(str::to_string)
                    .collect(),
            )
        }
        None => (
            true,
            vec!["dtparam=spi=on".into(), "dtoverlay=disable-bt".into()],
        ),
    };

    let config = ConfigTxt::parse(&text);
    let (body, block) = reference(&text);
    let stripped = config.render(&[]);
    assert_eq!(stripped, body, "the file outside pinode's block changed");
    assert_eq!(
        config.previous_block(),
        &block[..],
        "pinode's block read wrongly"
    );

    // What `patch` does: arm_64bit=1 only if not already in effect, then the extra lines.
    let mut lines = Vec::new();
    if arm_64bit && !config.is_effective_everywhere("arm_64bit", "1") {
        lines.push("arm_64bit=1".to_string());
    }
    lines.extend(extra);
    let patched = config.render(&lines);
    assert!(
        patched.starts_with(&body),
        "the patched file does not start with the body"
    );

    // Reading the patched file back: the same body (plus a line break where the last line
    // had none), exactly our lines, and patching again changes nothing.
    let again = ConfigTxt::parse(&patched);
    assert_eq!(
        again.previous_block(),
        &lines[..],
        "the block reads back differently"
    );
    assert_eq!(
        again.render(&lines),
        patched,
        "patching twice is not a no-op"
    );
    let body_again = again.render(&[]);
    if lines.is_empty() {
        assert_eq!(body_again, body);
    } else {
        assert!(
            body_again.starts_with(&body) && body_again.len() - body.len() <= 2,
            "{body_again:?}"
        );
        assert!(body_again.is_empty() || body_again.ends_with('\n'));
    }
    assert_eq!(
        again.is_effective_everywhere("arm_64bit", "1"),
        config.is_effective_everywhere("arm_64bit", "1"),
        "the settings outside the block changed meaning"
    );
}
