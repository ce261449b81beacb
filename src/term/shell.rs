//! Command lines shown for a person to copy ("to flash later: …").

/// `text` as one shell word: as is when it holds only characters the shell leaves alone,
/// else in single quotes (a path with a space or a `$` pastes back as the same path).
pub fn word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+,:@=%".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::word;

    #[test]
    fn quotes_only_what_the_shell_would_change() {
        assert_eq!(word("lab.yaml"), "lab.yaml");
        assert_eq!(word("/dev/sdb"), "/dev/sdb");
        assert_eq!(word("my lab.yaml"), "'my lab.yaml'");
        assert_eq!(word("it's"), "'it'\\''s'");
        assert_eq!(word("$HOME"), "'$HOME'");
        assert_eq!(word(""), "''");
    }
}
