//! `pinode` / `pinode wizard`: questions in the terminal, a saved profile, then cards or
//! image files.
//!
//! Every answer is checked where it is asked, by the same rules `profile check` applies, and a
//! bad one is explained and asked again. Nothing is written until the summary is confirmed
//! (see `pinode::wizard::save`), so Ctrl-C at any question leaves no file behind.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dialoguer::theme::ColorfulTheme;
use dialoguer::{Confirm, Input, Password, Select};
use secrecy::SecretString;

use crate::error::Error;
use pinode::cache::store::Listing;
use pinode::catalog::Catalog;
use pinode::ci::gitlab::check_runner_token;
use pinode::device::discover::{SystemView, Transport};
use pinode::device::safety::{assess, one_line, reasons, verdict};
use pinode::plan::password::sha512_crypt;
use pinode::profile::v1::expand::expand_hostname;
use pinode::profile::values;
use pinode::ui::{Untrusted, terminal_safe};
use pinode::wizard::{
    Answers, K3sRelease, RunnerAnswers, Secret, WifiAnswers, host, render_profile, save,
};

use super::flash::FlashOptions;
use super::prepare::PrepareOptions;
use super::{Output, Sources};

/// The alias offered first: what most clusters want.
const DEFAULT_OS: &str = "raspios-lite-arm64";

pub fn run(sources: &Sources, out: &Output) -> Result<(), Error> {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Error::Wizard(
            "the wizard needs a terminal. Without one, write a profile (examples in profiles/, \
             the format in README.md and `pinode profile schema`), check it with `pinode \
             profile check PROFILE`, and make images with `pinode prepare --profile PROFILE \
             --out-dir DIR`"
                .into(),
        ));
    }
    // Before anything is asked: the catalog may take a while (or fail) offline, and the
    // questions must not wait for it.
    let catalog = CatalogLookup::start(sources);
    let w = Wizard {
        theme: ColorfulTheme::default(),
        catalog,
        needs_network: sources.offline || sources.catalog_is_remote(),
    };
    eprintln!(
        "pinode: a profile for your cluster in a few questions. Nothing is written until you \
         confirm the summary; Ctrl-C stops at any time.\n"
    );
    let answers = w.ask_all()?;

    eprintln!("\nThe profile (secrets are not in it):\n");
    let text = render_profile(&answers).map_err(save::SaveError::from)?;
    for line in text.lines() {
        eprintln!("  {}", Untrusted(line));
    }
    for (file, _) in save::secret_files(&answers) {
        eprintln!("  + {file} (mode 0600, holds a secret)");
    }
    eprintln!();
    let path = w.profile_path(&answers)?;
    let saved = save::save(&answers, &path)?;
    out.say(format!("saved {}", saved.profile.display()));
    for file in &saved.secret_files {
        out.say(format!("saved {} (mode 0600)", file.display()));
    }

    let next = w.select(
        "What now?",
        [
            "Flash cards now",
            "Prepare image files (for CI, or another flasher)",
            "Quit",
        ],
    )?;
    let profile = saved.profile;
    match next {
        0 => match w.pick_device()? {
            Picked::Card(device) => {
                super::flash::run_with(&flash_options(profile, device), sources, out)
            }
            Picked::Cancel(card) => {
                out.say(flash_later(&profile, card.as_deref()));
                out.say(super::status_next(&profile));
                Ok(())
            }
        },
        1 => {
            let dir: String = Input::with_theme(&w.theme)
                .with_prompt("Write the images to")
                .default("images".into())
                .interact_text()
                .map_err(stopped)?;
            super::prepare::run_with(
                &prepare_options(profile.clone(), PathBuf::from(dir)),
                sources,
                out,
            )?;
            out.say(super::status_next(&profile));
            Ok(())
        }
        _ => {
            out.say(format!(
                "later: sudo pinode flash --profile {0}   or   pinode prepare --profile {0} \
                 --out-dir images",
                profile.display()
            ));
            out.say(super::status_next(&profile));
            Ok(())
        }
    }
}

fn stopped(e: dialoguer::Error) -> Error {
    Error::Wizard(format!("the wizard stopped ({e}); nothing was saved"))
}

/// Every node of the new profile to the one card reader picked, verified, asking first, one
/// card after another (the cards are swapped in that reader; a failed card gets the question
/// to retry it).
fn flash_options(profile: PathBuf, device: PathBuf) -> FlashOptions {
    FlashOptions {
        profile,
        nodes: Vec::new(),
        devices: vec![device],
        yes: false,
        verify: true,
        full: false,
        allow_non_removable: false,
        unmount: false,
        image: None,
        at_once: 1,
    }
}

/// Every node of the new profile as an uncompressed image file in `out_dir`.
fn prepare_options(profile: PathBuf, out_dir: PathBuf) -> PrepareOptions {
    PrepareOptions {
        profile,
        nodes: Vec::new(),
        image: None,
        out_dir,
        compression: pinode::sink::file::Compression::None,
        bmap: false,
    }
}

/// How secrets are kept, asked the first time one is needed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum SecretStore {
    Files,
    Env,
}

/// The wizard's questions. Every question goes to dialoguer through these methods, which
/// escape what a terminal would act on (see `pinode::ui::untrusted`) in the prompt, the
/// answers offered and the messages that re-ask: they may hold outside text (a path under
/// `$HOME`, a card's model, a catalog's names, the reason an answer was refused).
struct Wizard {
    theme: ColorfulTheme,
    catalog: CatalogLookup,
    /// Whether the catalog is one fetched over the network, or `--offline` was given: then
    /// a catalog not fetched just now means no network, and the local choices come first.
    needs_network: bool,
}

/// How long the OS question waits (with a spinner) for a catalog still on its way before it
/// offers the default and a local file without it.
const CATALOG_WAIT: Duration = Duration::from_secs(10);

/// The OS catalog, looked up in a thread started before the first question and collected
/// when the OS question comes: offline, the first question must not wait for a lookup that
/// will fail (it used to sit 25 s on a blank screen).
struct CatalogLookup {
    handle: Cell<Option<JoinHandle<Found>>>,
}

/// What the OS question offers: the catalog (or why there is none) and the cache's images.
struct Found {
    catalog: Result<Catalog, Error>,
    /// Complete cache entries with an alias: usable with no network at all.
    cached: Vec<Listing>,
    /// Whether the images of the catalog can be downloaded now: it was fetched from the
    /// network just now (not a kept copy, not `--offline`, not a local file that failed).
    online: bool,
}

impl CatalogLookup {
    fn start(sources: &Sources) -> CatalogLookup {
        let resolver = sources.resolver();
        let handle = std::thread::spawn(move || {
            let resolver = match resolver {
                Ok(r) => r,
                Err(e) => {
                    return Found {
                        catalog: Err(e),
                        cached: Vec::new(),
                        online: false,
                    };
                }
            };
            let mut cached: Vec<Listing> = resolver
                .cache
                .list()
                .unwrap_or_default()
                .into_iter()
                .filter(|l| l.complete && !l.aliases.is_empty())
                .collect();
            // The default first, then the newest.
            cached.sort_by(|a, b| {
                let default = |l: &Listing| !l.aliases.iter().any(|x| x == DEFAULT_OS);
                default(a)
                    .cmp(&default(b))
                    .then_with(|| b.release_date.cmp(&a.release_date))
            });
            // The OS question draws its own spinner if it has to wait for this.
            let catalog = resolver.http().map_err(Error::from).and_then(|http| {
                Ok(resolver.load_catalog(http.as_ref(), &pinode::progress::Silent)?)
            });
            let online = !resolver.is_offline()
                && resolver.catalog_is_remote()
                && catalog.as_ref().is_ok_and(|c| c.fallback.is_none());
            Found {
                catalog,
                cached,
                online,
            }
        });
        CatalogLookup {
            handle: Cell::new(Some(handle)),
        }
    }

    /// The catalog, waiting for it (a spinner says so) at most [`CATALOG_WAIT`].
    fn wait(&self) -> Found {
        let lost = |why: String| Found {
            catalog: Err(Error::Wizard(why)),
            cached: Vec::new(),
            online: false,
        };
        let Some(handle) = self.handle.take() else {
            return lost("looked up already".into());
        };
        if !handle.is_finished() {
            let spinner =
                indicatif::ProgressBar::new_spinner().with_message("looking up the OS catalog…");
            spinner.enable_steady_tick(Duration::from_millis(100));
            let started = Instant::now();
            while !handle.is_finished() && started.elapsed() < CATALOG_WAIT {
                std::thread::sleep(Duration::from_millis(50));
            }
            spinner.finish_and_clear();
            if !handle.is_finished() {
                // The thread is left to end on its own (its timeouts bound it).
                return lost(format!("no answer in {} s", CATALOG_WAIT.as_secs()));
            }
        }
        handle
            .join()
            .unwrap_or_else(|_| lost("the catalog lookup failed".into()))
    }
}

impl Wizard {
    fn input(
        &self,
        prompt: &str,
        default: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<String, Error> {
        let mut input = Input::<String>::with_theme(&self.theme).with_prompt(terminal_safe(prompt));
        // A default is shown in the prompt and given back as typed: offer only one that
        // passes the check (which also keeps control characters out of the prompt).
        if !default.is_empty() && check(default).is_ok() {
            input = input.default(default.to_string());
        }
        input
            .validate_with(|s: &String| check(s.trim()).map_err(|e| terminal_safe(&e).into_owned()))
            .interact_text()
            .map(|s| s.trim().to_string())
            .map_err(stopped)
    }

    /// One of `items`, the first preselected.
    fn select(
        &self,
        prompt: &str,
        items: impl IntoIterator<Item = impl ToString>,
    ) -> Result<usize, Error> {
        self.select_from(prompt, items, 0)
    }

    /// One of `items`, the cursor on number `start`.
    fn select_from(
        &self,
        prompt: &str,
        items: impl IntoIterator<Item = impl ToString>,
        start: usize,
    ) -> Result<usize, Error> {
        // Items name catalog entries, cards and key comments: outside text, escaped here for
        // every picker.
        let items: Vec<String> = items
            .into_iter()
            .map(|i| Untrusted(&i.to_string()).to_string())
            .collect();
        Select::with_theme(&self.theme)
            .with_prompt(terminal_safe(prompt))
            .items(&items)
            .default(start.min(items.len().saturating_sub(1)))
            .interact()
            .map_err(stopped)
    }

    /// A yes/no question answered with Enter, as every other question is: by default
    /// dialoguer takes a lone `y` as the answer, and the Enter typed after it then answers
    /// the next question.
    fn confirm(&self, prompt: &str, default: bool) -> Result<bool, Error> {
        Confirm::with_theme(&self.theme)
            .with_prompt(terminal_safe(prompt))
            .default(default)
            .wait_for_newline(true)
            .interact()
            .map_err(stopped)
    }

    fn secret(
        &self,
        prompt: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<SecretString, Error> {
        Password::with_theme(&self.theme)
            .with_prompt(terminal_safe(prompt))
            .with_confirmation("Again, to be sure", "The two entries differ; once more")
            .validate_with(|s: &String| check(s).map_err(|e| terminal_safe(&e).into_owned()))
            .interact()
            .map(SecretString::from)
            .map_err(stopped)
    }

    fn ask_all(&self) -> Result<Answers, Error> {
        eprintln!("The cluster");
        let cluster_name = self.input("Cluster name", "pi-cluster", values::cluster_name)?;
        let server_count = self.ask_server_count()?;
        let servers = self.input(
            "Server hostnames (a pattern such as cp-[1-3])",
            &pattern(&format!("{cluster_name}-server"), server_count),
            |s| hostnames(s, server_count, &[]),
        )?;
        let agent_count: usize = self
            .input("How many agents (workers)", "2", |s| count(s, 0, 99))?
            .parse()
            .unwrap_or(0);
        let server_names = expand_hostname(&servers).unwrap_or_default();
        let agents = if agent_count == 0 {
            None
        } else {
            Some(self.input(
                "Agent hostnames (a pattern such as worker-[1-3])",
                &pattern(&format!("{cluster_name}-worker"), agent_count),
                |s| hostnames(s, agent_count, &server_names),
            )?)
        };
        let k3s = self.input(
            "K3s channel or version (stable, latest, v1.33, v1.33.5+k3s1)",
            "stable",
            |s| K3sRelease::parse(s).map(|_| ()),
        )?;
        let k3s = K3sRelease::parse(&k3s).map_err(Error::Usage)?;
        // Asked after the cluster, so that the catalog has had time to arrive.
        eprintln!("\nThe operating system");
        let os_image = self.ask_os()?;

        eprintln!("\nThe user on every node");
        let user = self.input(
            "User name",
            &host::user().unwrap_or_else(|| "pi-admin".into()),
            |s| {
                if s == "root" {
                    Err("root is not allowed: pick a user name".into())
                } else {
                    values::user_name(s)
                }
            },
        )?;
        let ssh_keys = self.ask_ssh_key()?;
        let password_hash = if ssh_keys.is_empty()
            || self.confirm("Also set a password (for the console)?", false)?
        {
            let password = self.secret("Password", |p| {
                if p.is_empty() {
                    Err("the password must not be empty".into())
                } else {
                    Ok(())
                }
            })?;
            use secrecy::ExposeSecret;
            Some(sha512_crypt(password.expose_secret()).map_err(Error::Usage)?)
        } else {
            None
        };

        let mut store = None;
        eprintln!("\nNetwork and region");
        let locale_default = host::locale();
        let wifi = if self.confirm("Connect to Wi-Fi? (wired Ethernet needs nothing)", false)? {
            let ssid = self.input("Wi-Fi name (SSID)", "", values::ssid)?;
            let psk = self.ask_secret(
                &mut store,
                "Wi-Fi passphrase",
                "wifi-psk",
                "PINODE_WIFI_PSK",
                &cluster_name,
                values::wifi_passphrase,
            )?;
            let country = self.input(
                "Wi-Fi country (two letters, e.g. GB, DE, US)",
                &host::country(&locale_default).unwrap_or_default(),
                values::country,
            )?;
            Some(WifiAnswers { ssid, psk, country })
        } else {
            None
        };
        let timezone = self.input("Time zone", &host::timezone(), values::timezone)?;
        let locale = self.input("Locale", &locale_default, values::locale)?;
        let keyboard = self.input("Keyboard layout", &host::keyboard(), values::keyboard)?;

        eprintln!("\nCI runner");
        let runner = if self.confirm(
            "Install a GitLab Runner (Kubernetes executor) on the first server?",
            false,
        )? {
            // The rule `profile check` applies: https, or http with its warning.
            let url = self.input("GitLab URL", "https://gitlab.com", |s| {
                pinode::ci::gitlab::check_url(s).map(|_| ())
            })?;
            if let Ok(Some(warning)) = pinode::ci::gitlab::check_url(&url) {
                eprintln!("warning: {}", terminal_safe(&warning));
            }
            let token = self.ask_secret(
                &mut store,
                "Runner authentication token (glrt-…)",
                "runner-token",
                "GITLAB_RUNNER_TOKEN",
                &cluster_name,
                check_runner_token,
            )?;
            Some(RunnerAnswers { url, token })
        } else {
            None
        };

        Ok(Answers {
            os_image,
            cluster_name,
            servers,
            agents,
            k3s,
            user,
            ssh_keys,
            password_hash,
            wifi,
            timezone,
            locale,
            keyboard,
            runner,
        })
    }

    /// How many servers; an even number is warned about at once (the rule `profile check`
    /// applies) and kept only after a yes, else asked again with the next odd number offered.
    fn ask_server_count(&self) -> Result<usize, Error> {
        let mut default = 1;
        loop {
            let n: usize = self
                .input(
                    "How many servers (control plane; 1, or 3 for HA)",
                    &default.to_string(),
                    |s| count(s, 1, 9),
                )?
                .parse()
                .unwrap_or(1);
            let Some(warning) = values::server_count(n) else {
                return Ok(n);
            };
            eprintln!("warning: {}", terminal_safe(&warning));
            if self.confirm(&format!("Keep {n} servers?"), false)? {
                return Ok(n);
            }
            default = if n < 9 { n + 1 } else { n - 1 };
        }
    }

    /// The images in the cache first (they work with no network), then, online, the
    /// catalog's Raspberry Pi OS images (Lite 64-bit first) and a local file; offline, a local
    /// file before what would have to be downloaded.
    fn ask_os(&self) -> Result<String, Error> {
        let found = self.catalog.wait();
        let mut choices: Vec<(String, Option<String>)> = Vec::new();
        for l in &found.cached {
            let date = l.release_date.as_deref().unwrap_or("?");
            let alias = &l.aliases[0];
            choices.push((
                format!("{} ({date}): {alias}, in the cache", l.name),
                Some(alias.clone()),
            ));
        }
        let offered = |choices: &[(String, Option<String>)], alias: &str| {
            choices.iter().any(|(_, a)| a.as_deref() == Some(alias))
        };
        let mut from_catalog: Vec<(String, Option<String>)> = Vec::new();
        match &found.catalog {
            Ok(catalog) => {
                if let Some(note) = &catalog.fallback {
                    eprintln!("({})", Untrusted(note));
                }
                let mut entries: Vec<_> = catalog
                    .entries
                    .iter()
                    .filter(|e| !e.aliases().is_empty())
                    .collect();
                entries.sort_by_key(|e| !e.aliases().iter().any(|a| a == DEFAULT_OS));
                for e in entries {
                    let alias = e.aliases()[0].clone();
                    if offered(&choices, &alias) {
                        continue;
                    }
                    let date = e.release_date.as_deref().unwrap_or("?");
                    from_catalog.push((format!("{} ({date}): {alias}", e.name), Some(alias)));
                }
            }
            Err(e) => eprintln!(
                "(the OS catalog is not available: {})",
                Untrusted(&e.to_string())
            ),
        }
        if !offered(&choices, DEFAULT_OS) && !offered(&from_catalog, DEFAULT_OS) {
            from_catalog.insert(
                0,
                (
                    format!("Raspberry Pi OS Lite (64-bit), downloaded when needed: {DEFAULT_OS}"),
                    Some(DEFAULT_OS.to_string()),
                ),
            );
        }
        let local = (
            "A local image file (.img, .img.xz, .img.gz, .img.zst)".to_string(),
            None,
        );
        // A catalog file that failed to load is no sign of being offline: only a network
        // catalog that could not be reached puts the local file before the downloads.
        let offline = !found.online && self.needs_network;
        if offline {
            choices.push(local);
            choices.extend(from_catalog);
        } else {
            choices.extend(from_catalog);
            choices.push(local);
        }
        let labels: Vec<&str> = choices.iter().map(|(l, _)| l.as_str()).collect();
        let pick = self.select("Operating system", &labels)?;
        if let Some(alias) = &choices[pick].1 {
            return Ok(alias.clone());
        }
        // The rule every image named to pinode passes (one place: pipeline::base).
        let path = self.input("Image file", "", |s| {
            pinode::pipeline::check_image_file(&expand_home(s))
                .map(|_| ())
                .map_err(|e| e.to_string())
        })?;
        let path = expand_home(&path);
        Ok(std::fs::canonicalize(&path)
            .unwrap_or(path)
            .display()
            .to_string())
    }

    /// A key from `~/.ssh/*.pub`, a pasted one, or none.
    fn ask_ssh_key(&self) -> Result<Vec<String>, Error> {
        let found = host::ssh_public_keys();
        let mut labels: Vec<String> = found
            .iter()
            .map(|(path, key)| {
                let comment = key.split_whitespace().nth(2).unwrap_or("");
                format!(
                    "{} ({} {comment})",
                    path.display(),
                    key.split_whitespace().next().unwrap_or("")
                )
            })
            .collect();
        labels.push("Paste a public key".into());
        labels.push("No key: log in with a password".into());
        let pick = self.select("SSH public key for logging in", &labels)?;
        if pick < found.len() {
            return Ok(vec![found[pick].1.clone()]);
        }
        if pick == found.len() {
            let key = self.input(
                "Public key (one line, ssh-ed25519 AAAA… you@host)",
                "",
                values::ssh_public_key,
            )?;
            return Ok(vec![key]);
        }
        Ok(Vec::new())
    }

    /// A secret: its value into a 0600 file next to the profile, or the name of the
    /// environment variable that will hold it.
    fn ask_secret(
        &self,
        store: &mut Option<SecretStore>,
        prompt: &str,
        suffix: &str,
        default_env: &str,
        cluster: &str,
        check: impl Fn(&str) -> Result<(), String>,
    ) -> Result<Secret, Error> {
        let how = match store {
            Some(how) => *how,
            None => {
                let pick = self.select(
                    "Where should secrets (passphrase, tokens) be kept?",
                    [
                        "In files next to the profile, readable only by you (mode 0600)",
                        "In environment variables that you set before flashing",
                    ],
                )?;
                let how = if pick == 0 {
                    SecretStore::Files
                } else {
                    SecretStore::Env
                };
                *store = Some(how);
                how
            }
        };
        match how {
            SecretStore::Files => Ok(Secret::File {
                file: format!("{cluster}.{suffix}"),
                value: self.secret(prompt, check)?,
            }),
            SecretStore::Env => Ok(Secret::Env(self.input(
                &format!("{prompt}: environment variable"),
                default_env,
                values::env_var_name,
            )?)),
        }
    }

    /// Where to save the profile; an existing file is replaced only after a yes.
    fn profile_path(&self, answers: &Answers) -> Result<PathBuf, Error> {
        loop {
            let path = PathBuf::from(self.input(
                "Save the profile as",
                &format!("{}.yaml", answers.cluster_name),
                |s| {
                    let p = expand_home(s);
                    let dir = p.parent().filter(|d| !d.as_os_str().is_empty());
                    match dir {
                        Some(d) if !d.is_dir() => {
                            Err(format!("{} is not a directory", d.display()))
                        }
                        _ if p.is_dir() => Err(format!("{} is a directory", p.display())),
                        _ => Ok(()),
                    }
                },
            )?);
            let path = expand_home(&path.display().to_string());
            let clashes: Vec<PathBuf> = std::iter::once(path.clone())
                .chain(
                    save::secret_files(answers)
                        .iter()
                        .map(|(f, _)| path.parent().unwrap_or(Path::new(".")).join(f)),
                )
                .filter(|p| p.exists())
                .collect();
            if clashes.is_empty() {
                return Ok(path);
            }
            let names: Vec<String> = clashes.iter().map(|p| p.display().to_string()).collect();
            if self.confirm(&format!("Replace {}?", names.join(", ")), false)? {
                return Ok(path);
            }
        }
    }

    /// A card to flash, from the devices and their verdicts; [`Picked::Cancel`] to stop.
    ///
    /// Loop devices are hidden until "Show loop devices" is picked: they are files posing as
    /// disks (a person flashing a card never means one; the tests' cards are). The cursor
    /// starts on the first card that can be written, never on a refused disk.
    fn pick_device(&self) -> Result<Picked, Error> {
        let view = SystemView::from_settings(pinode::edge::settings());
        let mut show_loops = false;
        loop {
            let (devices, hidden): (Vec<_>, Vec<_>) = view
                .scan()?
                .into_iter()
                .partition(|d| show_loops || d.transport != Transport::Loop);
            let verdicts: Vec<_> = devices.iter().map(|d| assess(d, None)).collect();
            let mut entries: Vec<(String, PickEntry)> = devices
                .iter()
                .zip(&verdicts)
                .enumerate()
                .map(|(i, (d, v))| {
                    (
                        format!("{}  ({})", one_line(d), verdict(v)),
                        PickEntry::Disk(i),
                    )
                })
                .collect();
            if !hidden.is_empty() {
                entries.push((
                    format!(
                        "Show loop devices ({} hidden: disk images, not cards)",
                        hidden.len()
                    ),
                    PickEntry::ShowLoops,
                ));
            }
            entries.push((
                "Look again (insert the card first)".into(),
                PickEntry::LookAgain,
            ));
            entries.push(("Cancel".into(), PickEntry::Cancel));
            let usable: Vec<usize> = (0..devices.len())
                .filter(|&i| verdicts[i].is_empty())
                .collect();
            // On the first usable card; without one, on "Look again".
            let start = usable
                .first()
                .copied()
                .unwrap_or(devices.len() + hidden.len().min(1));
            let labels: Vec<&str> = entries.iter().map(|(l, _)| l.as_str()).collect();
            let pick = self.select_from("Which card?", &labels, start)?;
            match entries[pick].1 {
                PickEntry::ShowLoops => show_loops = true,
                PickEntry::LookAgain => {}
                PickEntry::Cancel => {
                    // The one usable card is named in the command to run later; otherwise a
                    // placeholder and where to find the name.
                    let only = match usable.as_slice() {
                        [i] => Some(devices[*i].path.clone()),
                        _ => None,
                    };
                    return Ok(Picked::Cancel(only));
                }
                PickEntry::Disk(i) => {
                    if verdicts[i].is_empty() {
                        return Ok(Picked::Card(devices[i].path.clone()));
                    }
                    eprintln!(
                        "{} cannot be written here: {}",
                        devices[i].path.display(),
                        Untrusted(&reasons(&verdicts[i]))
                    );
                }
            }
        }
    }
}

/// What the card picker offers besides the cards.
#[derive(Clone, Copy)]
enum PickEntry {
    Disk(usize),
    ShowLoops,
    LookAgain,
    Cancel,
}

/// The card picker's answer.
enum Picked {
    Card(PathBuf),
    /// Cancelled; the one usable card seen, for the command to run later.
    Cancel(Option<PathBuf>),
}

/// How to flash the saved profile later, as a command line to copy.
fn flash_later(profile: &Path, card: Option<&Path>) -> String {
    let device = card.map_or("/dev/sdX".into(), |c| {
        crate::term::shell_word(&c.display().to_string())
    });
    let hint = if card.is_none() {
        " (the card's name as `pinode devices` lists it)"
    } else {
        ""
    };
    format!(
        "not flashed; to flash later: sudo pinode flash --profile {} --device {device}{hint}",
        crate::term::shell_word(&profile.display().to_string())
    )
}

/// `worker` for one host, `worker-[1-3]` for three.
fn pattern(stem: &str, n: usize) -> String {
    if n == 1 {
        stem.to_string()
    } else {
        format!("{stem}-[1-{n}]")
    }
}

fn count(text: &str, min: usize, max: usize) -> Result<(), String> {
    match text.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(()),
        _ => Err(format!("a number from {min} to {max}")),
    }
}

/// A hostname pattern that expands to `n` valid hostnames, none of them in `taken`.
fn hostnames(pattern: &str, n: usize, taken: &[String]) -> Result<(), String> {
    let names = expand_hostname(pattern)?;
    for name in &names {
        values::hostname(name)?;
        if taken.contains(name) {
            return Err(format!("{name} is already a server's name"));
        }
    }
    if names.len() != n {
        return Err(format!(
            "{pattern} names {} host(s), {n} wanted (e.g. worker-[1-{n}])",
            names.len()
        ));
    }
    Ok(())
}

/// `~/…` typed at a question, in the invoking user's home (under sudo theirs, not root's),
/// as profiles expand it.
fn expand_home(text: &str) -> PathBuf {
    pinode::invoker::Invoker::current()
        .expand_tilde(text)
        .unwrap_or_else(|| PathBuf::from(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wizard_flashes_one_card_after_another() {
        let options = flash_options(PathBuf::from("lab.yaml"), PathBuf::from("/dev/sdz"));
        assert_eq!(
            options.at_once, 1,
            "serial: the cards are swapped in one reader, a failed card gets the retry question"
        );
    }
}
