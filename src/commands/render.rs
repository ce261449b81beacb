//! `pinode render`: a node's first-boot files and boot-file edits in a folder, for review or
//! for people who write cards with other tools. No image is modified.

use std::path::Path;

use crate::error::Error;
use crate::term::progress::TerminalProgress;
use pinode::image::Image;
use pinode::invoker::Invoker;
use pinode::osinfo::{self, BootEvidence, ForcedInit, InitChooser, OsInfo, RootEvidence};
use pinode::pipeline::BaseImage;
use pinode::plan::NodePlan;
use pinode::render;
use pinode::rootfs::OsRelease;
use pinode::sink::file::{write_atomic, write_atomic_mode};
use pinode::ui::Untrusted;

use super::{Output, Sources, load_profile, single_node};
use crate::cli::RenderArgs;

pub fn run(args: &RenderArgs, sources: &Sources, out: &Output) -> Result<(), Error> {
    let profile = load_profile(&args.profile, out)?;
    let node = single_node(&profile, args.node.as_deref())?;
    let forced = args
        .init
        .map(|route| ForcedInit {
            route,
            by: InitChooser::Flag,
        })
        .or(profile.init_override());
    create_dir_all(&args.out_dir)?;
    // One render per folder at a time: two would mix their nodes' files.
    let _lock = lock_folder(&args.out_dir)?;
    let mut written = Written::default();
    // A compressed image is decompressed into a registered temporary file there (see
    // pinode::cleanup): removed when done, on Ctrl-C, or by the next run after a kill.
    let scratch = std::env::temp_dir();
    let progress = TerminalProgress::detect(out.quiet);
    let source = match args.generation {
        Some(_) => None,
        None => match BaseImage::locate(&profile, args.image.as_deref())? {
            Some(path) => Some(BaseImage::open(&path, &scratch, &progress, None)?),
            None => cached_base(&profile, sources, &scratch, &progress),
        },
    };
    let image_used = source.is_some();
    let mut image = None;
    let os: OsInfo = if let Some(source) = source {
        let mut opened = Image::open(&source.path, false)?;
        let os = opened.detect_os(source.init_format.as_deref(), forced)?;
        image = Some((opened, source));
        os
    } else if let Some(generation) = args.generation {
        let codename = generation.as_str().to_string();
        let root = RootEvidence {
            os_release: Some(OsRelease {
                version_codename: Some(codename),
                ..Default::default()
            }),
            has_cloud_init: generation == osinfo::Generation::Trixie,
            has_snapd: false,
            resolves_mdns: None,
        };
        let mut os = osinfo::detect(&BootEvidence::default(), Some(&root), None, forced);
        // Without an image nothing is known about what is installed.
        os.cloud_init_installed = None;
        os.has_snapd = None;
        os
    } else {
        return Err(Error::Usage(
            "render needs to know the OS generation: pass --image IMAGE or --generation \
             bullseye|bookworm|trixie, or put os.image in the cache first (pinode download -p PROFILE)"
                .into(),
        ));
    };

    let mut plan = NodePlan::resolve(&profile, node, pinode::edge::settings())?;
    // With cluster.airgap, the runners' charts (from the cache, or downloaded through it).
    let charts = pinode::pipeline::charts_for_profile(&profile, &sources.resolver()?)?;
    plan.embed_charts(&charts);
    plan.notes.iter().for_each(|n| out.note(n));
    let custom = render::render(&plan, &os).map_err(|source| Error::Render {
        node: node.hostname.clone(),
        source,
    })?;
    let dir = &args.out_dir;
    let boot_dir = dir.join("boot");
    create_dir_all(&boot_dir)?;
    for file in &custom.files {
        let path = boot_dir.join(&file.path);
        written.file(
            &path,
            &file.contents,
            if file.secret { 0o600 } else { 0o644 },
        )?;
    }
    let tokens: Vec<String> = custom.cmdline.iter().map(|e| e.token()).collect();
    written.file(
        &dir.join("cmdline.txt.append"),
        format!("{}\n", tokens.join(" ")).as_bytes(),
        0o644,
    )?;
    let mut lines = custom.config_extra.clone();
    if custom.arm_64bit {
        lines.insert(0, "arm_64bit=1".into());
    }
    written.file(
        &dir.join("config.txt.append"),
        format!("[all]\n{}\n", lines.join("\n")).as_bytes(),
        0o644,
    )?;

    // With an image at hand, show the exact edited files too (applied to an in-memory overlay).
    if let Some((mut opened, _source)) = image.take() {
        let edited = opened.with_boot_fs(|fs| {
            pinode::bootfs::apply::apply(fs, &custom)?;
            Ok((fs.read("cmdline.txt")?, fs.read("config.txt")?))
        })?;
        if let (Some(cmdline), Some(config)) = edited {
            written.file(&boot_dir.join("cmdline.txt"), &cmdline, 0o644)?;
            written.file(&boot_dir.join("config.txt"), &config, 0o644)?;
        }
    }
    let examples: Vec<pinode::ci::Example> = plan
        .cluster
        .iter()
        .flat_map(|c| c.runners.iter())
        .flat_map(|r| r.examples())
        .collect();
    for example in &examples {
        written.file(
            &dir.join(&example.file_name),
            example.contents.as_bytes(),
            0o644,
        )?;
    }
    let ci: String = examples
        .iter()
        .map(|e| format!("{:<30} {}\n", e.file_name, e.about))
        .collect();
    let readme = format!(
        "pinode {version} rendered node {host} for {os_name} (first boot via {init}).\n\n\
         boot/               files for the root of the boot partition{edited}\n\
         cmdline.txt.append  tokens to add to the END of the single line in cmdline.txt\n\
         config.txt.append   lines to add at the END of config.txt\n{ci}\n\
         Files in boot/ with mode 0600 hold secrets (password hash, Wi-Fi key, cluster and runner\n\
         tokens): the node removes them from the card on first boot; do not commit them.\n",
        version = env!("CARGO_PKG_VERSION"),
        host = custom.hostname,
        os_name = os.full_name(),
        init = os.init,
        edited = if image_used {
            " (cmdline.txt and config.txt as edited)"
        } else {
            ""
        },
    );
    written.file(&dir.join("README.txt"), readme.as_bytes(), 0o644)?;
    let files = written.files.clone();
    for stale in written.finish(dir)? {
        out.say(format!(
            "{}: removed {} (rendered earlier, not part of this node)",
            custom.hostname,
            stale.display()
        ));
    }
    out.say(format!(
        "{}: rendered {} files for {} ({}) into {}",
        custom.hostname,
        custom.files.len(),
        os.describe(),
        os.init,
        dir.display()
    ));
    // render downloads the charts it embeds (above), never the K3s release files: it says
    // what prepare and flash would place.
    if let Some(boot_dir) = &custom.airgap_dir
        && let Some(release) = profile.airgap_release()
    {
        let cache = pinode::cache::store::Cache::open(sources.cache_dir.as_deref()).ok();
        out.say(format!(
            "  air-gap (placed in {boot_dir}/ by prepare and flash, not by render): {}",
            pinode::engine::airgap::describe(&release, cache.as_ref())
        ));
    }
    if out.verbose > 0 {
        for e in &os.evidence {
            out.say(format!("  because {}", Untrusted(e)));
        }
        for file in &files {
            out.say(format!("  wrote {file}"));
        }
    }
    Ok(())
}

/// The profile's `os.image` (an alias or URL) when it is already in the cache: render never
/// downloads, so this looks only at the cache and its copy of the catalog.
fn cached_base(
    profile: &pinode::profile::LoadedProfile,
    sources: &Sources,
    scratch: &Path,
    progress: &TerminalProgress,
) -> Option<BaseImage> {
    let offline = Sources {
        offline: true,
        ..sources.clone()
    };
    let resolver = offline.resolver().ok()?;
    BaseImage::image_for_profile(profile, None, &resolver, scratch, progress, || {}).ok()
}

/// Where a render records the files it wrote, so that the next render into the same folder
/// removes those it does not write again (another node's secrets, say) and nothing else.
const RECORD: &str = ".pinode-render.json";
/// The longest record read back (it lists a handful of names).
const RECORD_LIMIT: u64 = 1 << 20;

/// The files this render wrote, relative to the output folder.
#[derive(Default)]
struct Written {
    files: Vec<String>,
}

impl Written {
    fn file(&mut self, path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
        write_file(path, contents, mode)?;
        self.files.push(path.to_string_lossy().into_owned());
        Ok(())
    }

    /// Removes what the previous render recorded and this one did not write, then records
    /// this one. Only regular files at relative paths inside `dir` are removed.
    fn finish(mut self, dir: &Path) -> Result<Vec<std::path::PathBuf>, Error> {
        let prefix = dir.to_string_lossy().into_owned();
        for f in &mut self.files {
            if let Some(rest) = f.strip_prefix(&prefix) {
                *f = rest.trim_start_matches('/').to_string();
            }
        }
        let record = dir.join(RECORD);
        // Read by pinode::input, as every file in a folder others may write to: a FIFO
        // planted here is refused at once, and more than the limit is no record of ours.
        let previous: Vec<String> =
            pinode::input::read_regular(&record, RECORD_LIMIT, "a render record")
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok())
                .unwrap_or_default();
        let mut removed = Vec::new();
        for old in previous.iter().filter(|p| !self.files.contains(p)) {
            let inside = !old.is_empty()
                && Path::new(old)
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            let path = dir.join(old);
            if inside && std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                std::fs::remove_file(&path).map_err(|e| Error::path(&path, e))?;
                removed.push(path);
            }
        }
        let text = serde_json::to_vec_pretty(&self.files).unwrap_or_default();
        write_atomic(&record, &text).map_err(|e| Error::path(&record, e))?;
        Ok(removed)
    }
}

/// Takes the folder's render lock, refusing when another run holds it.
fn lock_folder(dir: &Path) -> Result<pinode::cleanup::LockFile, Error> {
    let path = dir.join(".pinode-lock.render");
    match pinode::cleanup::LockFile::try_acquire(&path) {
        Ok(Some(lock)) => Ok(lock),
        Ok(None) => Err(Error::path(
            dir,
            "another pinode render is writing into this folder; wait for it to finish",
        )),
        Err(e) => Err(Error::path(&path, e)),
    }
}

fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), Error> {
    if let Some(parent) = path.parent() {
        create_dir_all(parent)?;
    }
    // The mode (and, under sudo, the owner) is set before the rename (see
    // write_atomic_mode), never by path after it.
    write_atomic_mode(path, contents, mode).map_err(|e| Error::path(path, e))
}

/// Creates `dir` and its missing parents; under sudo, those it creates are the invoking
/// user's, like the files written into them.
fn create_dir_all(dir: &Path) -> Result<(), Error> {
    Invoker::current()
        .create_dir_all(dir, 0o777)
        .map_err(|e| Error::path(dir, e))
}
