//! Sizes for people, in one unit: binary (KiB, MiB, GiB), everywhere pinode prints a size.
//!
//! Images are made of MiB-aligned partitions and `ls -lh`, `du -h` and `lsblk` print binary
//! units, so a mix of "60.0 MiB" here and "62.9 MB" there reads as two different numbers.
//! The one exception is a card's capacity, which is also shown as sold (decimal GB, the
//! number on the label), next to the binary value: [`card`].

/// `bytes` in binary units with one decimal: `512 B`, `60.0 MiB`, `29.7 GiB`.
pub fn binary(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A card's capacity: binary like every other size, then the vendor's decimal figure that is
/// printed on the card, labelled as such: `29.7 GiB (32.0 GB as sold)`.
pub fn card(bytes: u64) -> String {
    let sold = if bytes >= 1_000_000_000 {
        format!("{:.1} GB", bytes as f64 / 1e9)
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    };
    format!("{} ({sold} as sold)", binary(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_and_as_sold() {
        assert_eq!(binary(512), "512 B");
        assert_eq!(binary(60 << 20), "60.0 MiB");
        assert_eq!(card(32_000_000_000), "29.8 GiB (32.0 GB as sold)");
        assert_eq!(card(104_857_600), "100.0 MiB (104.9 MB as sold)");
    }
}
