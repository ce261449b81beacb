// Harness for the `boot_fat` fuzz target, shared with tests/fuzz_regressions.rs through
// include!().
//
// Input: the start of a FAT boot partition (boot sector, FATs, directories, file data). The
// harness puts it into a disk image behind a valid MBR whose partition 1 (type 0x0c) starts at
// byte 4096 and is as long as the boot sector says (total sectors x 512, at least the input,
// at most 64 MiB; the part the input does not cover reads as zeros, a sparse file). A seed
// thus needs to hold only the used part of a real file system, and mutations reach the FAT
// code instead of dying in the partition table. The image file lives in /dev/shm when it
// can, since `Image::open` takes a path.
//
// Then it does what `inspect` and `patch` do: open, detect the OS, read the boot state, and
// patch the partition twice (firstrun route, then cloud-init route, which takes the first
// patch's files away again), committing each time. Checked: no panic; a patch never writes
// outside partition 1; what a successful patch wrote reads back from the committed image.

use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::OnceLock;

use pinode::bootfs::state::boot_state;
use pinode::pipeline::node::customise;
use pinode::image::Image;
use pinode::osinfo::InitRoute;
use pinode::profile::LoadedProfile;

pub const PART_START: u64 = 4096;
pub const MAX_PART: u64 = 64 << 20;

const PROFILE: &str = r#"version: 1
os:
  image: unused.img
defaults:
  user:
    name: alice
    ssh_authorized_keys:
      - "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAeT4pnjR2kaK8bT0MsxNPRa1m2qYFztbnGgveCr63E alice@laptop"
    password_hash: "$6$pinodesalt$ZU8tXiuiLl3v.QDIcku9Zu6nG5xxmDLRrN6L7M4O8o2LLDmkJTF0ExUBxp3TkOiD6Kh21B4pR8moDI..taezW1"
  ssh:
    enabled: true
  wifi:
    ssid: "Home Net"
    psk: "correct horse battery"
    country: DE
  timezone: Europe/Berlin
  boot:
    cgroups: true
    arm_64bit: true
    cmdline_extra: [quiet]
    config_extra: ["dtparam=spi=on"]
nodes:
  - hostname: fuzz-node
    role: server
"#;

/// Files whose reading `inspect` and the OS detection try.
const NAMES: [&str; 9] = [
    "cmdline.txt",
    "config.txt",
    "issue.txt",
    "user-data",
    "meta-data",
    "network-config",
    "pinode/node.json",
    "overlays/README",
    "ssh",
];

fn profile() -> &'static LoadedProfile {
    static PROFILE_CELL: OnceLock<LoadedProfile> = OnceLock::new();
    PROFILE_CELL.get_or_init(|| {
        LoadedProfile::parse(Path::new("fuzz.yaml"), PROFILE).expect("the harness profile is valid")
    })
}

/// The partition length for `data`: what its boot sector declares, within bounds.
pub fn partition_len(data: &[u8]) -> u64 {
    let le16 = |at: usize| {
        data.get(at..at + 2)
            .map_or(0, |b| u64::from(u16::from_le_bytes([b[0], b[1]])))
    };
    let le32 = |at: usize| {
        data.get(at..at + 4).map_or(0, |b| {
            u64::from(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        })
    };
    let total = match le16(19) {
        0 => le32(32),
        n => n,
    };
    let covered = (data.len() as u64).div_ceil(512).max(1) * 512;
    (total * 512).min(MAX_PART).max(covered)
}

fn mbr(part_len: u64) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    mbr[440..444].copy_from_slice(&0x5eed_f00du32.to_le_bytes());
    let entry = &mut mbr[446..462];
    entry[4] = 0x0c; // FAT32 (LBA)
    entry[8..12].copy_from_slice(&((PART_START / 512) as u32).to_le_bytes());
    entry[12..16].copy_from_slice(&((part_len / 512) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    mbr
}

fn scratch_dir() -> std::path::PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// Bytes of the image file outside partition 1: the first 4096 and any after it.
fn outside(path: &Path, part_len: u64) -> (Vec<u8>, u64) {
    let file = std::fs::File::open(path).expect("open the image");
    let len = file.metadata().expect("stat the image").len();
    let mut head = vec![0u8; PART_START as usize];
    file.read_exact_at(&mut head, 0).expect("read the image");
    let mut tail = Vec::new();
    if len > PART_START + part_len {
        tail.resize((len - PART_START - part_len) as usize, 0);
        file.read_exact_at(&mut tail, PART_START + part_len)
            .expect("read the image");
    }
    head.extend(tail);
    (head, len)
}

pub fn run(data: &[u8]) {
    let part_len = partition_len(data);
    let file = tempfile::Builder::new()
        .prefix("pinode-fuzz-")
        .suffix(".img")
        .tempfile_in(scratch_dir())
        .expect("create the scratch image");
    {
        let mut f = file.as_file();
        f.write_all(&mbr(part_len)).expect("write the MBR");
        f.seek(SeekFrom::Start(PART_START)).expect("seek");
        f.write_all(data).expect("write the partition");
        f.set_len(PART_START + part_len).expect("size the image");
    }
    let path = file.path();
    let before = outside(path, part_len);

    // `inspect`: read-only.
    let Ok(mut image) = Image::open(path, false) else {
        return;
    };
    assert_eq!(image.boot_partition().start, PART_START);
    let _ = image.detect_os(None, None).map(|os| os.evidence.len());
    let _ = image.boot_fat_kind();
    let _ = image.with_boot_fs(|fs| {
        let state = boot_state(fs, "/boot/firmware")?;
        let _ = serde_json::to_string(&state);
        for name in NAMES {
            let _ = fs.read(name)?;
            let _ = fs.times(name)?;
        }
        Ok(())
    });
    drop(image);

    // `patch`, twice, each committed.
    let profile = profile();
    for route in [InitRoute::Firstrun, InitRoute::CloudInit] {
        let Ok(mut image) = Image::open(path, true) else {
            return;
        };
        let Ok(os) = image.detect_os(
            None,
            Some(pinode::osinfo::ForcedInit {
                route,
                by: pinode::osinfo::InitChooser::Profile,
            }),
        ) else {
            return;
        };
        let Ok((custom, _report, _notes)) = customise(&mut image, profile, &profile.nodes[0], &os)
        else {
            return;
        };
        image.commit().expect("commit to the scratch image");
        drop(image);
        assert!(
            outside(path, part_len) == before,
            "the patch wrote outside the boot partition"
        );

        // What was written reads back.
        let mut image = Image::open(path, false).expect("the patched image no longer opens");
        let back = image.with_boot_fs(|fs| {
            let mut files = Vec::new();
            for f in &custom.files {
                files.push((f.path.clone(), fs.read(&f.path)?));
            }
            let cmdline = fs.read("cmdline.txt")?;
            Ok((files, cmdline))
        });
        let (files, cmdline) = back.expect("the patched boot partition no longer reads");
        for ((path, got), f) in files.iter().zip(&custom.files) {
            assert!(
                got.as_deref() == Some(&f.contents[..]),
                "{path} reads back differently"
            );
        }
        let cmdline = String::from_utf8(cmdline.expect("cmdline.txt is gone"))
            .expect("cmdline.txt is not text");
        let cmdline = pinode::bootfs::cmdline::Cmdline::parse(&cmdline);
        for edit in &custom.cmdline {
            assert!(
                cmdline.contains(&edit.token()),
                "cmdline.txt lacks {}",
                edit.token()
            );
        }
    }
}
