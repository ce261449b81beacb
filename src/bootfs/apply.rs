//! Applies a node's [`BootContent`] to a boot partition.
//!
//! Idempotent and minimal: files are rewritten only when their bytes differ, cmdline.txt and
//! config.txt keep every stock byte, and the manifest ([`super::manifest`]) records what pinode
//! added so that patching again with other values first takes the old values away. Patching
//! twice with the same values changes nothing the second time.

use serde::Serialize;

use super::cmdline::Cmdline;
use super::config_txt::ConfigTxt;
use super::content::{BootContent, CmdlineEdit};
use super::manifest::{MANIFEST, Manifest, ORIGINALS};
use super::state::{STATUS_FILE, read_text};
use super::{BootFs, BootFsError, Change};

/// What applying did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    pub files: Vec<(String, Change)>,
    pub removed: Vec<String>,
    pub(crate) restored: Vec<String>,
    pub cmdline: Change,
    pub(crate) cmdline_added: Vec<String>,
    pub config: Change,
}

/// What the previous manifest recorded as pinode's changes (nothing, without one).
struct Recorded {
    cmdline_added: Vec<String>,
    cmdline_replaced: Vec<String>,
    files_created: Vec<String>,
    files_replaced: Vec<String>,
}

/// Applies `c` to the open boot partition.
pub fn apply(fs: &mut BootFs<'_>, c: &BootContent) -> Result<ApplyReport, BootFsError> {
    let previous = Manifest::read(fs)?;
    let recorded = |list: fn(&Manifest) -> &Vec<String>| previous.as_ref().map(list).cloned();
    let previous = Recorded {
        cmdline_added: recorded(|m| &m.cmdline_added).unwrap_or_default(),
        cmdline_replaced: recorded(|m| &m.cmdline_replaced).unwrap_or_default(),
        files_created: recorded(|m| &m.files_created).unwrap_or_default(),
        files_replaced: recorded(|m| &m.files_replaced).unwrap_or_default(),
    };
    let mut report = ApplyReport::default();
    // Large files first, and their room checked before anything at all is written.
    check_room(fs, c)?;

    // cmdline.txt: take pinode's previous tokens away, then add this node's.
    let text = read_text(fs, "cmdline.txt")?.ok_or(BootFsError::Missing("cmdline.txt"))?;
    let mut cmdline = Cmdline::parse(&text);
    for token in &previous.cmdline_added {
        cmdline.remove(token);
    }
    for token in &previous.cmdline_replaced {
        if let Some((key, _)) = token.split_once('=')
            && cmdline.value_of(key).is_none()
        {
            cmdline.ensure(token);
        }
    }
    let baseline: Vec<String> = cmdline.tokens().map(str::to_string).collect();
    let mut tokens_replaced = Vec::new();
    for edit in &c.cmdline {
        match edit {
            CmdlineEdit::Ensure(token) => cmdline.ensure(token),
            CmdlineEdit::Set(key, value) => {
                if let Some(old) = cmdline.value_of(key).filter(|old| old != value) {
                    tokens_replaced.push(format!("{key}={old}"));
                }
                cmdline.set(key, value)
            }
        };
    }
    report.cmdline_added = cmdline
        .tokens()
        .filter(|t| !baseline.iter().any(|b| b == t))
        .map(str::to_string)
        .collect();
    report.cmdline = fs.write("cmdline.txt", cmdline.render().as_bytes())?;

    // config.txt: pinode's block at the end, only with lines not already in effect.
    let config_text = read_text(fs, "config.txt")?;
    let config = ConfigTxt::parse(config_text.as_deref().unwrap_or(""));
    let mut lines = Vec::new();
    if c.arm_64bit && !config.is_effective_everywhere("arm_64bit", "1") {
        lines.push("arm_64bit=1".to_string());
    }
    lines.extend(c.config_extra.iter().cloned());
    let rendered = config.render(&lines);
    report.config = if config_text.is_none() && lines.is_empty() {
        Change::Unchanged
    } else {
        fs.write("config.txt", rendered.as_bytes())?
    };

    // Files. A file of the image's own that pinode replaces is kept aside first, and put
    // back when a later patch no longer writes it.
    let mut created = Vec::new();
    let mut replaced = Vec::new();
    for file in &c.files {
        let was_created = previous.files_created.contains(&file.path);
        let was_replaced = previous.files_replaced.contains(&file.path);
        if !was_created && !was_replaced {
            if let Some(original) = fs.read(&file.path)? {
                copy_file(fs, &file.path, &original_path(&file.path), &original)?;
                replaced.push(file.path.clone());
            } else {
                created.push(file.path.clone());
            }
        } else {
            // pinode's own earlier version may hold secrets: clear it where it lies first.
            if fs.read(&file.path)?.as_deref() != Some(&file.contents[..]) {
                fs.scrub(&file.path)?;
            }
            if was_created {
                created.push(file.path.clone());
            } else {
                replaced.push(file.path.clone());
            }
        }
        let change = fs.write(&file.path, &file.contents)?;
        report.files.push((file.path.clone(), change));
    }
    for file in &c.bulk {
        if !previous.files_created.contains(&file.path) && fs.file_len(&file.path)?.is_some() {
            // Not pinode's: an image file of the same name is not overwritten.
            return Err(BootFsError::File {
                path: file.path.clone(),
                source: std::io::Error::other(
                    "already on the boot partition, not put there by pinode",
                ),
            });
        }
        let mut source = crate::input::open_regular(&file.source)
            .map_err(|e| BootFsError::File {
                path: file.path.clone(),
                source: std::io::Error::other(e.to_string()),
            })?
            .0;
        fs.write_from(&file.path, &mut source, file.len)?;
        created.push(file.path.clone());
        report
            .files
            .push((file.path.clone(), super::Change::Created));
    }
    let wanted = |path: &String| {
        c.files.iter().any(|f| &f.path == path) || c.bulk.iter().any(|f| &f.path == path)
    };
    for old in previous.files_created.iter().filter(|p| !wanted(p)) {
        if let Some(len) = fs.file_len(old)? {
            fs.allow(len.saturating_mul(2));
        }
        fs.scrub(old)?;
        if fs.remove(old)? {
            report.removed.push(old.clone());
        }
    }
    for old in previous.files_replaced.iter().filter(|p| !wanted(p)) {
        if let Some(original) = fs.read(&original_path(old))? {
            fs.scrub(old)?;
            copy_file(fs, &original_path(old), old, &original)?;
            fs.remove(&original_path(old))?;
            report.restored.push(old.clone());
        }
    }
    if replaced.is_empty() {
        fs.remove(ORIGINALS)?;
    }
    if fs.remove(STATUS_FILE)? {
        report.removed.push(STATUS_FILE.to_string());
    }

    created.sort();
    replaced.sort();
    let manifest = Manifest {
        pinode: env!("CARGO_PKG_VERSION").to_string(),
        hostname: c.hostname.clone(),
        role: c.role,
        generation: c.generation,
        init: c.init,
        instance_id: c.instance_id.clone(),
        cmdline_added: report.cmdline_added.clone(),
        cmdline_replaced: tokens_replaced,
        files_created: created,
        files_replaced: replaced,
    };
    let mut json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    json.push(b'\n');
    fs.write(MANIFEST, &json)?;
    Ok(report)
}

/// Refuses content whose large files do not fit, naming the sizes, before anything is
/// written. Room is counted in whole clusters; older copies of the same files (a card
/// patched again) are counted as free, and so is the room of the small files they replace,
/// a few KiB, kept as margin instead.
fn check_room(fs: &BootFs<'_>, c: &BootContent) -> Result<(), BootFsError> {
    if c.bulk.is_empty() {
        return Ok(());
    }
    let space = fs.space()?;
    let mut needed = 0u64;
    let mut freed = 0u64;
    for file in &c.bulk {
        needed += space.occupied(file.len);
        if let Some(old) = fs.file_len(&file.path)? {
            freed += space.occupied(old);
        }
    }
    // The small files, directories and the manifest: generously, a cluster each, and 1 MiB.
    let margin = (c.files.len() as u64 + 8) * space.cluster + (1 << 20);
    let free = space.free + freed;
    if needed + margin > free {
        let names: Vec<String> = c
            .bulk
            .iter()
            .map(|f| {
                format!(
                    "{} {}",
                    f.path.rsplit('/').next().unwrap_or(&f.path),
                    crate::ui::size::binary(f.len)
                )
            })
            .collect();
        return Err(BootFsError::NoRoom {
            what: format!("the air-gap files ({})", names.join(", ")),
            needed: needed + margin,
            free,
            total: space.total,
        });
    }
    Ok(())
}

/// Copies `from` (whose bytes are `contents`) to `to`, timestamps included.
fn copy_file(
    fs: &mut BootFs<'_>,
    from: &str,
    to: &str,
    contents: &[u8],
) -> Result<(), BootFsError> {
    fs.write(to, contents)?;
    if let Some(times) = fs.times(from)? {
        fs.set_times(to, times)?;
    }
    Ok(())
}

fn original_path(path: &str) -> String {
    format!("{ORIGINALS}/{path}")
}
