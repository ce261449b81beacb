//! Name lists kept as data files in `data/` (one name a line, `#` comments with the source
//! and date on top): parsed once, on first use, into a set.

use std::collections::HashSet;

/// The names of a data file: every line that is neither empty nor a comment, trimmed.
pub(super) fn parse(text: &'static str) -> HashSet<&'static str> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn comments_and_blank_lines_are_not_names() {
        let names = super::parse("# source\n\n gb \nus\n");
        assert_eq!(names.len(), 2);
        assert!(names.contains("gb") && names.contains("us"));
    }
}
