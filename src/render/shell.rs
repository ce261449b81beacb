//! POSIX sh programs built from a fixed function library and quoted values.
//!
//! User-supplied values never become shell syntax: each is assigned once, single-quoted by
//! `shlex`, to a variable at the top of the script, and the code only ever uses the variables
//! in double quotes. The library itself is static text checked by shellcheck in the tests.

use std::borrow::Cow;

use super::RenderError;

/// Quotes `value` for POSIX sh so that it arrives byte-exact.
fn quote(value: &str) -> Result<String, RenderError> {
    shlex::try_quote(value)
        .map(|q| q.into_owned())
        .map_err(|_| {
            RenderError("a value contains a NUL character, which no shell can carry".into())
        })
}

/// A shell program: a header, a library of functions, variables, and a `main` made of steps.
#[derive(Debug, Default)]
pub(crate) struct ShellProgram {
    header: Vec<String>,
    library: Vec<Cow<'static, str>>,
    vars: Vec<(String, String)>,
    steps: Vec<String>,
    propagate_status: bool,
}

impl ShellProgram {
    /// Adds a comment line to the header.
    pub(crate) fn comment(&mut self, line: impl Into<String>) -> &mut Self {
        self.header.push(line.into());
        self
    }

    /// Adds shell code (function definitions): static text, or text assembled from static
    /// parts and the paths a stage passes down (never from user values: those are `var`s).
    pub(crate) fn library(&mut self, code: impl Into<Cow<'static, str>>) -> &mut Self {
        self.library.push(code.into());
        self
    }

    /// Assigns `value` to the shell variable `name` (quoted).
    pub(crate) fn var(&mut self, name: &str, value: &str) -> Result<&mut Self, RenderError> {
        debug_assert!(
            name.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        );
        self.vars.push((name.to_string(), quote(value)?));
        Ok(self)
    }

    /// Makes the script exit with `main`'s status (the default is 0: `firstrun.sh` must
    /// succeed for `systemd.run_success_action` to reboot into the configured system).
    pub(crate) fn propagate_status(&mut self) -> &mut Self {
        self.propagate_status = true;
        self
    }

    /// Adds a line to `main`. Only static code and `"$VARIABLE"` references belong here.
    pub(crate) fn step(&mut self, code: impl Into<String>) -> &mut Self {
        self.steps.push(code.into());
        self
    }

    /// The script. The body is one `{ … }` group so the shell has read all of it before
    /// running any of it: the script deletes itself from the boot partition at the end.
    pub(crate) fn render(&self) -> String {
        let mut out = String::from("#!/bin/sh\n");
        for line in &self.header {
            out.push_str("# ");
            out.push_str(line);
            out.push('\n');
        }
        // Functions run through `step "label" function args`, which shellcheck cannot follow.
        out.push_str("# shellcheck disable=SC2317\n{\nset -u\n\n");
        // Values are literal: a `$(` inside single quotes is data, which shellcheck cannot know.
        out.push_str("# shellcheck disable=SC2016\n{\n");
        for (name, value) in &self.vars {
            out.push_str(&format!("{name}={value}\n"));
        }
        out.push_str("}\n\n");
        for code in &self.library {
            out.push_str(code.trim_start_matches('\n'));
            if !code.ends_with('\n') {
                out.push('\n');
            }
            out.push('\n');
        }
        out.push_str("main() {\n");
        for step in &self.steps {
            out.push('\t');
            out.push_str(step);
            out.push('\n');
        }
        let exit = if self.propagate_status {
            "exit $?"
        } else {
            "exit 0"
        };
        out.push_str(&format!("}}\n\nmain \"$@\"\n{exit}\n}}\n"));
        out
    }
}

/// The function library of pinode's first-boot programs: logging, steps, file helpers and
/// the stage 1 setup functions. Both stages carry all of it, so that the installed scripts
/// stay the same bytes.
pub(crate) const CORE: &str = r##"
PINODE_LOG=/var/log/pinode-firstboot.log
FAILED=''
# The machine-readable status `pinode status` reads: its shape is pinode's
# `status::FirstBootStatus`. The directory is root-only; the file holds no secret.
PINODE_STATUS_DIR=/var/lib/pinode
PINODE_STARTED=''
PINODE_STEP=''
LAST_LOG=''
LAST_ERROR=''
REASON=''

log() {
	LAST_LOG="$*"
	printf '%s pinode %s: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ' 2>/dev/null)" "$PINODE_STAGE" "$*" >>"$PINODE_LOG" 2>/dev/null
	printf 'pinode %s: %s\n' "$PINODE_STAGE" "$*" >&2
}

# step LABEL COMMAND [ARG...]: run one step, log the outcome, remember failures. With
# STOP_AFTER_FAILURE=yes (the second stage, whose steps build on each other: no K3s, no
# kubeconfig) a step after a failed one is skipped and says so.
step() {
	label=$1
	shift
	if [ -n "$FAILED" ] && [ "${STOP_AFTER_FAILURE:-no}" = yes ]; then
		log "skipped: $label (after $FAILED failed)"
		return 0
	fi
	PINODE_STEP=$label
	LAST_LOG=''
	write_status running
	if "$@"; then
		log "ok: $label"
	else
		# The reason is the last line the step logged: its own explanation. The first failure
		# is the one reported: a later one is often its consequence.
		if [ -z "$LAST_ERROR" ]; then
			REASON=${LAST_LOG:-"$label failed"}
			LAST_ERROR=$label
		fi
		log "FAILED: $label"
		FAILED="$FAILED${FAILED:+, }$label"
	fi
}

# json_string VALUE: VALUE as a JSON string (control characters dropped), null when empty.
json_string() {
	if [ -z "$1" ]; then
		printf null
	else
		printf '"%s"' "$(printf '%s' "$1" | tr -d '\000-\037' | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g')"
	fi
}

# write_status STATE: running, ok or failed, into status.json, atomically (tmp + mv). A
# status that cannot be written is logged and never fails the boot.
write_status() {
	status_now=$(date -u '+%Y-%m-%dT%H:%M:%SZ')
	[ -n "$PINODE_STARTED" ] || PINODE_STARTED=$status_now
	status_finished=''
	[ "$1" = running ] || status_finished=$status_now
	status_tmp="$PINODE_STATUS_DIR/status.json.pinode-new"
	if ! { mkdir -p "$PINODE_STATUS_DIR" && chmod 700 "$PINODE_STATUS_DIR" &&
		printf '{"version":1,"stage":%s,"state":%s,"step":%s,"started":%s,"finished":%s,"last_error":%s,"reason":%s,"root_write_bytes_per_second":%s}\n' \
			"$(json_string "$PINODE_STAGE")" "$(json_string "$1")" "$(json_string "$PINODE_STEP")" \
			"$(json_string "$PINODE_STARTED")" "$(json_string "$status_finished")" \
			"$(json_string "$LAST_ERROR")" "$(json_string "$REASON")" "${ROOT_WRITE_BPS:-null}" >"$status_tmp" &&
		chmod 644 "$status_tmp" && mv -f "$status_tmp" "$PINODE_STATUS_DIR/status.json"; } 2>/dev/null; then
		printf 'pinode %s: cannot write %s/status.json\n' "$PINODE_STAGE" "$PINODE_STATUS_DIR" >>"$PINODE_LOG" 2>/dev/null
	fi
	return 0
}

# write_file PATH MODE CONTENT: replace PATH atomically with exactly CONTENT.
write_file() {
	mkdir -p "$(dirname "$1")" || return 1
	tmp="$1.pinode-new"
	(umask 077 && printf '%s' "$3" >"$tmp") && chmod "$2" "$tmp" && mv -f "$tmp" "$1"
}

# scrub FILE: overwrite, then delete. A deleted file's clusters stay readable on FAT.
scrub() {
	[ -f "$1" ] || return 0
	if command -v shred >/dev/null 2>&1; then
		shred --zero --remove "$1"
	else
		size=$(wc -c <"$1")
		dd if=/dev/zero of="$1" bs=1 count="$size" conv=notrunc 2>/dev/null
		rm -f "$1"
	fi
}

"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_byte_exact() {
        for v in ["plain", "it's", "$(reboot)", "`x`", "a\nb", "\\", "ü", ""] {
            let q = quote(v).unwrap();
            let back = shlex::split(&q).unwrap();
            assert_eq!(back, [v], "{q}");
        }
        assert!(quote("a\0b").is_err());
    }

    /// status.json is JSON whatever a step logged: quotes, backslashes, control characters.
    #[test]
    fn json_string_escapes_what_json_needs() {
        let tricky = "a \"q\" \\ b\tc\nd $(x) `y` ü";
        let mut p = ShellProgram::default();
        p.library(CORE);
        p.var("PINODE_STAGE", "t")
            .unwrap()
            .var("V", tricky)
            .unwrap();
        p.step(r#"json_string "$V""#).step(r#"json_string """#);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(p.render())
            .output()
            .unwrap();
        let text = String::from_utf8(out.stdout).unwrap();
        let (value, null) = text.split_at(text.len() - 4);
        assert_eq!(null, "null");
        let back: String = serde_json::from_str(value).unwrap();
        assert_eq!(back, "a \"q\" \\ bcd $(x) `y` ü");
    }
}
