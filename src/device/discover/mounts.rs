//! What the running system uses: `/proc/self/mountinfo` and `/proc/swaps`.
//!
//! Mounts are matched to disks by device number (field 3 of mountinfo), which also covers
//! mounts through symlinks such as `/dev/disk/by-uuid/…`. Btrfs reports an anonymous device
//! number (major 0), so for those the mount source is used as well.

/// One line of mountinfo, reduced to what decides whether a disk is in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mount {
    pub(crate) devno: (u32, u32),
    pub(crate) mount_point: String,
    fs_type: String,
    /// The mount source (`/dev/sda2`, `overlay`, `rpool/ROOT`…).
    pub(crate) source: String,
}

/// Parses `/proc/self/mountinfo` (see proc(5)). Lines that do not parse are skipped: one
/// strange mount must not hide the others.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let fields: Vec<&str> = before.split(' ').collect();
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let mount_point = unescape(fields.get(4)?);
    let mut rest = after.split(' ');
    let fs_type = unescape(rest.next()?);
    let source = unescape(rest.next().unwrap_or(""));
    Some(Mount {
        devno: (major.parse().ok()?, minor.parse().ok()?),
        mount_point,
        fs_type,
        source,
    })
}

/// Undoes the kernel's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let value = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(byte) = u8::try_from(value) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Active swap devices from `/proc/swaps` (files are skipped: they live on a mounted file
/// system, which already marks their disk as in use).
pub(crate) fn parse_swaps(text: &str) -> Vec<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.next()?;
            let kind = fields.next()?;
            (kind == "partition").then(|| unescape(name))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "\
22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
30 22 259:1 / /boot/efi rw,relatime shared:2 - vfat /dev/nvme0n1p1 rw,fmask=0077
41 22 8:17 / /media/bob/boot\\040fs rw,nosuid shared:30 - vfat /dev/sdb1 rw
50 22 0:45 /@home /home rw shared:5 - btrfs /dev/sda2 rw
broken line
";
        let mounts = parse_mountinfo(text);
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[0].devno, (259, 2));
        assert_eq!(mounts[0].mount_point, "/");
        assert_eq!(mounts[2].mount_point, "/media/bob/boot fs");
        assert_eq!(mounts[3].source, "/dev/sda2");
        assert_eq!(mounts[3].fs_type, "btrfs");
    }

    #[test]
    fn parses_swaps() {
        let text = "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n\
                    /dev/sdc2                               partition\t1048572\t\t0\t\t-2\n\
                    /swapfile                               file\t\t2097148\t\t0\t\t-3\n";
        assert_eq!(parse_swaps(text), vec!["/dev/sdc2".to_string()]);
    }

    #[test]
    fn unescape_leaves_odd_backslashes() {
        assert_eq!(unescape("a\\040b"), "a b");
        assert_eq!(unescape("a\\9"), "a\\9");
        assert_eq!(unescape("end\\"), "end\\");
    }
}
