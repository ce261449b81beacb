//! Loop devices as stand-in cards (root only), and made-up machines for the refusals that
//! cannot be staged on a test host (a system disk, a partition node).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{is_root, output, run};

/// A loop device over a sparse file of `size` bytes, detached when dropped.
pub struct Loop {
    pub dev: PathBuf,
    pub backing: PathBuf,
}

impl Loop {
    /// `None` when not root (loop devices need it); CI runs as root.
    pub fn new(dir: &Path, name: &str, size: u64) -> Option<Loop> {
        Loop::filled(dir, name, size, false)
    }

    /// A card whose every byte is random: whatever a write leaves alone stays garbage.
    pub fn random(dir: &Path, name: &str, size: u64) -> Option<Loop> {
        Loop::filled(dir, name, size, true)
    }

    fn filled(dir: &Path, name: &str, size: u64, random: bool) -> Option<Loop> {
        if !is_root() {
            eprintln!("skipped: loop devices need root");
            return None;
        }
        let backing = dir.join(format!("{name}.card"));
        let file = std::fs::File::create(&backing).unwrap();
        file.set_len(size).unwrap();
        use std::io::Read;
        use std::os::unix::fs::FileExt;
        let mut junk = vec![0xA5u8; 1 << 20];
        let mut urandom = std::fs::File::open("/dev/urandom").unwrap();
        let mut at = 0;
        while at < size {
            if random {
                urandom.read_exact(&mut junk).unwrap();
            }
            file.write_all_at(&junk[..junk.len().min((size - at) as usize)], at)
                .unwrap();
            // Old contents every 16 MiB are enough to show a skipped region; random cards
            // are random throughout.
            at += if random { 1 << 20 } else { 16 << 20 };
        }
        drop(file);
        let dev = run(Command::new("losetup").args(["-f", "--show"]).arg(&backing))
            .trim()
            .to_string();
        Some(Loop {
            dev: PathBuf::from(dev),
            backing,
        })
    }

    /// The device's `major:minor`.
    pub fn devno(&self) -> String {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.dev).unwrap().rdev();
        format!("{}:{}", rustix::fs::major(rdev), rustix::fs::minor(rdev))
    }

    pub fn name(&self) -> String {
        self.dev.file_name().unwrap().to_string_lossy().into_owned()
    }

    /// The first `len` bytes of the device.
    pub fn read(&self, len: u64) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let f = std::fs::File::open(&self.dev).unwrap();
        let mut buf = vec![0u8; len as usize];
        f.read_exact_at(&mut buf, 0).unwrap();
        buf
    }
}

/// A temporary directory with a 100 MiB card in it; `None` when not root. (Bind it as
/// `(dir, card)`: the card is detached before the directory goes.)
pub fn card_in_tempdir() -> Option<(tempfile::TempDir, Loop)> {
    let dir = tempfile::tempdir().unwrap();
    let card = Loop::new(dir.path(), "card", 100 << 20)?;
    Some((dir, card))
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = output(Command::new("losetup").arg("-d").arg(&self.dev));
    }
}

/// A made-up `/sys` + `/proc` tree (for `PINODE_SYSTEM_ROOT`) with one disk entry.
pub struct FakeSystem {
    pub root: PathBuf,
}

impl FakeSystem {
    pub fn new(dir: &Path, mountinfo: &str) -> FakeSystem {
        let root = dir.join("fake-system");
        std::fs::create_dir_all(root.join("sys/block")).unwrap();
        std::fs::create_dir_all(root.join("proc/self")).unwrap();
        std::fs::write(root.join("proc/self/mountinfo"), mountinfo).unwrap();
        std::fs::write(
            root.join("proc/swaps"),
            "Filename Type Size Used Priority\n",
        )
        .unwrap();
        FakeSystem { root }
    }

    /// A disk `name` with device number `devno`, and partitions `(name, devno)`.
    pub fn disk(&self, name: &str, devno: &str, size: u64, parts: &[(&str, &str)]) -> &Self {
        let dir = self.root.join("sys/block").join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("dev"), format!("{devno}\n")).unwrap();
        std::fs::write(dir.join("size"), format!("{}\n", size / 512)).unwrap();
        std::fs::write(dir.join("removable"), "1\n").unwrap();
        std::fs::write(dir.join("ro"), "0\n").unwrap();
        for (part, devno) in parts {
            let p = dir.join(part);
            std::fs::create_dir_all(&p).unwrap();
            std::fs::write(p.join("dev"), format!("{devno}\n")).unwrap();
            std::fs::write(p.join("partition"), "1\n").unwrap();
            std::fs::write(p.join("size"), "2048\n").unwrap();
        }
        self
    }
}
