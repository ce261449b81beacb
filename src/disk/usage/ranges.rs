//! Sets of byte ranges: which parts of an image have to reach the card.

use std::ops::Range;

/// Sorted, non-overlapping, non-adjacent byte ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<Range<u64>>,
}

impl RangeSet {
    /// One range covering `range` (empty if `range` is).
    pub(crate) fn whole(range: Range<u64>) -> RangeSet {
        let mut set = RangeSet::default();
        set.insert(range);
        set
    }

    /// Builds a set from ranges in any order, overlapping or not.
    pub(crate) fn from_unsorted(mut ranges: Vec<Range<u64>>) -> RangeSet {
        ranges.retain(|r| r.start < r.end);
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        RangeSet { ranges: merged }
    }

    /// Adds `range`. Cheap when ranges come in ascending order (the usual case: bitmaps are
    /// scanned from the start).
    pub(crate) fn insert(&mut self, range: Range<u64>) {
        if range.start >= range.end {
            return;
        }
        match self.ranges.last_mut() {
            None => self.ranges.push(range),
            Some(last) if range.start > last.end => self.ranges.push(range),
            Some(last) if range.start >= last.start => last.end = last.end.max(range.end),
            Some(_) => {
                let mut all = std::mem::take(&mut self.ranges);
                all.push(range);
                *self = RangeSet::from_unsorted(all);
            }
        }
    }

    /// Adds every range of `other`.
    pub(crate) fn extend(&mut self, other: &RangeSet) {
        let mut all = std::mem::take(&mut self.ranges);
        all.extend(other.ranges.iter().cloned());
        *self = RangeSet::from_unsorted(all);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Range<u64>> {
        self.ranges.iter()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Total bytes covered.
    pub fn bytes(&self) -> u64 {
        self.ranges.iter().map(|r| r.end - r.start).sum()
    }

    /// The same set with every range widened to multiples of `align` and cut at `limit`.
    /// Direct I/O to a card needs aligned offsets and lengths; widening only ever writes more.
    pub(crate) fn aligned(&self, align: u64, limit: u64) -> RangeSet {
        let align = align.max(1);
        RangeSet::from_unsorted(
            self.ranges
                .iter()
                .map(|r| {
                    let start = r.start / align * align;
                    let end = r.end.div_ceil(align).saturating_mul(align).min(limit);
                    start.min(limit)..end
                })
                .collect(),
        )
    }

    /// Whether `offset` lies in the set.
    pub fn contains(&self, offset: u64) -> bool {
        let i = self.ranges.partition_point(|r| r.end <= offset);
        self.ranges.get(i).is_some_and(|r| r.start <= offset)
    }

    /// Pieces of at most `max` bytes covering the set from `from` on, in order: the I/O plan.
    pub fn pieces(&self, from: u64, max: u64) -> impl Iterator<Item = Range<u64>> + '_ {
        let max = max.max(1);
        self.ranges.iter().flat_map(move |r| {
            let start = r.start.max(from);
            let end = r.end;
            let count = if start < end {
                (end - start).div_ceil(max)
            } else {
                0
            };
            (0..count).map(move |i| {
                let s = start + i * max;
                s..(s + max).min(end)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_adjacent_ranges() {
        let set = RangeSet::from_unsorted(vec![10..20, 0..5, 5..7, 15..30, 40..40, 50..60]);
        assert_eq!(
            set.iter().cloned().collect::<Vec<_>>(),
            vec![0..7, 10..30, 50..60]
        );
        assert_eq!(set.bytes(), 7 + 20 + 10);
        let mut built = RangeSet::default();
        for r in [50..60, 0..5, 5..7, 10..20, 15..30] {
            built.insert(r);
        }
        assert_eq!(built, set);
    }

    #[test]
    fn aligns_outward_and_clips() {
        let set = RangeSet::from_unsorted(vec![100..200, 4000..4100, 13_000..13_001]);
        let a = set.aligned(4096, 14_000);
        assert_eq!(
            a.iter().cloned().collect::<Vec<_>>(),
            vec![0..8192, 12_288..14_000]
        );
        assert!(a.contains(0) && a.contains(13_999) && !a.contains(14_000) && !a.contains(8192));
        // Ranges that touch after widening become one.
        let b = RangeSet::from_unsorted(vec![0..10, 8000..8200]).aligned(4096, 1 << 20);
        assert_eq!(b.iter().cloned().collect::<Vec<_>>(), vec![0..12_288]);
    }

    #[test]
    fn pieces_split_ranges_and_skip_before_from() {
        let set = RangeSet::from_unsorted(vec![0..10, 20..45]);
        let pieces: Vec<_> = set.pieces(5, 10).collect();
        assert_eq!(pieces, vec![5..10, 20..30, 30..40, 40..45]);
        assert_eq!(set.pieces(100, 10).count(), 0);
    }
}
