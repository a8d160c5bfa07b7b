//! Split borrows of the activation arena. The compiler places every buffer at a fixed range
//! of one arena; a statement writes one range while reading others, which are disjoint from
//! it by construction. `split` hands out the written range mutably and the rest immutably,
//! without `unsafe`. Depends on nothing in the crate; generated code uses it.

use std::ops::Range;

/// The arena minus the range being written.
pub struct Rest<'a, T> {
    head: &'a [T],
    tail: &'a [T],
    gap: Range<usize>,
}

impl<'a, T> Rest<'a, T> {
    /// A range that does not overlap the written one.
    pub fn get(&self, r: Range<usize>) -> &'a [T] {
        if r.end <= self.gap.start {
            &self.head[r]
        } else if r.start >= self.gap.end {
            &self.tail[r.start - self.gap.end..r.end - self.gap.end]
        } else {
            panic!(
                "buffer {r:?} overlaps the buffer being written {:?}",
                self.gap
            )
        }
    }
}

/// Splits `arena` into the mutable `out` range and the rest.
pub fn split<T>(arena: &mut [T], out: Range<usize>) -> (&mut [T], Rest<'_, T>) {
    let (head, rest) = arena.split_at_mut(out.start);
    let (out_slice, tail) = rest.split_at_mut(out.end - out.start);
    (
        out_slice,
        Rest {
            head,
            tail,
            gap: out,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn split_reads_around_the_written_range() {
        let mut a: Vec<i32> = (0..10).collect();
        let (out, rest) = super::split(&mut a, 4..6);
        assert_eq!(rest.get(0..4), &[0, 1, 2, 3]);
        assert_eq!(rest.get(6..10), &[6, 7, 8, 9]);
        out.copy_from_slice(rest.get(1..3));
        assert_eq!(a[4..6], [1, 2]);
    }

    #[test]
    #[should_panic]
    fn overlapping_reads_panic() {
        let mut a = [0; 10];
        let (_, rest) = super::split(&mut a, 4..6);
        rest.get(5..7);
    }
}
