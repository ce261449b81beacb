//! How many nodes may be in flight at once (cards written by `flash --parallel`, images by
//! `prepare`'s workers) within a memory budget.
//!
//! A node in flight holds its overlay: the boot-partition sectors its content changed,
//! in memory ([`crate::bootfs`] writes the files through `fatfs` into the overlay). Without
//! `cluster.airgap` that is kilobytes to a few MiB; with it, the K3s release files every
//! node gets on its boot partition ([`crate::engine::airgap`]: the binary, some 70 MiB, and
//! the images archive, under 200 MiB; some 190 MiB for v1.33) are in that overlay too, once
//! per node. Plus the card writer's buffers ([`crate::sink::card::CARD_BUFFER_BYTES`],
//! 18 MiB), which `prepare`'s writer does not exceed either. Four cards at once with the
//! real release files would need some 830 MiB, a worker per core on a 16-core machine
//! over 3 GiB: the number in flight is lowered to what fits [`BUDGET`].

/// The memory the nodes in flight may hold together: 1 GiB, which a Raspberry Pi 4/5 or a
/// laptop running pinode has to spare.
pub const BUDGET: u64 = 1 << 30;

/// What one node in flight holds beyond the bytes its boot partition gets from air-gap.
pub const PER_NODE: u64 = crate::sink::card::CARD_BUFFER_BYTES;

/// How many of `wanted` nodes may be in flight at once when each one's overlay holds
/// `airgap_bytes` (the air-gap files on its boot partition; 0 without air-gap): `wanted`,
/// lowered to what fits [`BUDGET`], never below 1 (one node at a time is the bound of
/// writing at all).
pub fn nodes_in_flight(wanted: usize, airgap_bytes: u64) -> usize {
    let per_node = airgap_bytes.saturating_add(PER_NODE);
    let fit = usize::try_from(BUDGET / per_node).unwrap_or(usize::MAX);
    wanted.min(fit).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn air_gap_lowers_the_nodes_in_flight_to_the_budget() {
        // Without air-gap, 16 nodes of 18 MiB fit: nothing is lowered.
        assert_eq!(nodes_in_flight(4, 0), 4);
        assert_eq!(nodes_in_flight(16, 0), 16);
        // The real release (about 190 MiB): 1 GiB / 208 MiB = 4 (of 4 wanted: kept).
        assert_eq!(nodes_in_flight(4, 190 * MIB), 4);
        assert_eq!(nodes_in_flight(16, 190 * MIB), 4);
        // A bigger release: fewer at once.
        assert_eq!(nodes_in_flight(4, 400 * MIB), 2);
        // Larger than the budget: still one at a time, never none.
        assert_eq!(nodes_in_flight(4, 2048 * MIB), 1);
        assert_eq!(nodes_in_flight(4, u64::MAX), 1);
        assert_eq!(nodes_in_flight(0, 0), 1);
    }
}
