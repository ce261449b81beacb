//! The terminal, which only the binary touches: progress bars drawn from the library's
//! progress events, and questions asked on stderr with answers read from stdin. The library
//! reports progress through `pinode::progress` and never prints.

pub mod progress;
pub mod prompt;

/// `text` as one shell word for a command line shown to copy ("to flash later: …"): as is
/// when the shell leaves it alone, else quoted by `shlex` (already the renderer's quoting),
/// so that a path with a space or a `$` pastes back as the same path. A NUL, which no shell
/// word can hold and no path does, is dropped.
pub fn shell_word(text: &str) -> String {
    shlex::try_quote(&text.replace('\0', ""))
        .map(std::borrow::Cow::into_owned)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_shell_word_pastes_back_as_the_same_text() {
        assert_eq!(super::shell_word("pi-cluster.yaml"), "pi-cluster.yaml");
        assert_eq!(super::shell_word("/dev/sdb"), "/dev/sdb");
        assert_eq!(super::shell_word("my lab.yaml"), "'my lab.yaml'");
        let odd = "it's $HOME";
        assert_eq!(
            shlex::split(&super::shell_word(odd)),
            Some(vec![odd.to_string()])
        );
    }
}
