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
