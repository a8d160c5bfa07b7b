//! Batched steps: the rows of several sequences computed together (continuous batching).
//!
//! A step stacks the new rows of each sequence one after another. Ops that treat rows alike
//! (Linears, norms, GELU) run once over all of them, so one pass over the weights serves
//! every sequence; attention runs per sequence against that sequence's own cache, a
//! `kv::KvCache` of the generated model's `CACHE_LEN` values in its `KV_FORMAT`, owned by
//! the caller (`Gpt2Model::new_cache`).

/// The rows one sequence adds in a batched step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// Index of the sequence's cache in the step's `caches`.
    pub cache: usize,
    /// Position of the first row: the rows `0..pos` are in the cache already.
    pub pos: usize,
    /// How many rows (tokens) the sequence adds.
    pub rows: usize,
}

/// Where a segment's rows are in a step: rows `row..row + rows` of the step's buffers hold
/// positions `pos..pos + rows` of the sequence whose cache is `caches[cache]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First row in the step's buffers.
    pub row: usize,
    /// Number of rows.
    pub rows: usize,
    /// Position of the first row in its sequence.
    pub pos: usize,
    /// Index of the sequence's cache.
    pub cache: usize,
}

/// The runs of `segments`, stacked in order from row 0.
pub fn runs(segments: &[Segment]) -> Runs<'_> {
    tail_runs(segments, false)
}

/// The runs of the ops that feed only the logits: as `runs`, or with `last_only` the last
/// row of each segment, moved to row `i` for segment `i` (`compact_last_rows`).
pub fn tail_runs(segments: &[Segment], last_only: bool) -> Runs<'_> {
    Runs {
        segments,
        next: 0,
        row: 0,
        last_only,
    }
}

/// The iterator of `runs` and `tail_runs`.
#[derive(Clone, Debug)]
pub struct Runs<'a> {
    segments: &'a [Segment],
    next: usize,
    row: usize,
    last_only: bool,
}

impl Iterator for Runs<'_> {
    type Item = Run;

    fn next(&mut self) -> Option<Run> {
        let s = self.segments.get(self.next)?;
        let run = if self.last_only {
            Run {
                row: self.next,
                rows: 1,
                pos: s.pos + s.rows - 1,
                cache: s.cache,
            }
        } else {
            Run {
                row: self.row,
                rows: s.rows,
                pos: s.pos,
                cache: s.cache,
            }
        };
        self.next += 1;
        self.row += s.rows;
        Some(run)
    }
}

/// Moves the last row of each segment of `buf` (rows of `row_len` elements, stacked as in
/// `runs`) to row `i` for segment `i`. Rows only move towards the front, in order, so no row
/// is overwritten before it moves.
pub fn compact_last_rows<T: Copy>(buf: &mut [T], row_len: usize, segments: &[Segment]) {
    for (i, r) in runs(segments).enumerate() {
        let last = r.row + r.rows - 1;
        if last != i {
            buf.copy_within(last * row_len..(last + 1) * row_len, i * row_len);
        }
    }
}

/// Checks a step before it runs: `ids` holds `Σ rows` tokens (`per_row` values each), at
/// most `max_rows` rows in all, every segment is non-empty and fits the sequence length
/// `seq_len`, and every cache exists, has `cache_len` elements and is used once.
pub fn check(
    ids: usize,
    per_row: usize,
    segments: &[Segment],
    caches: &[crate::kv::KvCache],
    cache_len: usize,
    seq_len: usize,
    format: crate::kv::KvFormat,
) -> Result<usize, String> {
    if segments.is_empty() {
        return Err("a batched step needs at least one segment".into());
    }
    let mut total = 0;
    for (i, s) in segments.iter().enumerate() {
        if s.rows == 0 {
            return Err(format!("segment {i} has no rows"));
        }
        if s.pos + s.rows > seq_len {
            return Err(format!(
                "segment {i}: rows {}..{} are beyond the sequence length {seq_len}",
                s.pos,
                s.pos + s.rows
            ));
        }
        match caches.get(s.cache) {
            None => {
                return Err(format!(
                    "segment {i}: cache {} of {} does not exist",
                    s.cache,
                    caches.len()
                ))
            }
            Some(c) if c.len() != cache_len => {
                return Err(format!(
                    "segment {i}: cache {} holds {} values, the model needs {cache_len}",
                    s.cache,
                    c.len()
                ))
            }
            Some(c) if c.format() != format => {
                return Err(format!(
                    "segment {i}: cache {} stores {} values, the model's cache is {}",
                    s.cache,
                    c.format().name(),
                    format.name()
                ))
            }
            Some(_) => {}
        }
        if segments[..i].iter().any(|o| o.cache == s.cache) {
            return Err(format!(
                "segment {i}: cache {} is used by two segments",
                s.cache
            ));
        }
        total += s.rows;
    }
    if total > seq_len {
        return Err(format!("a step holds at most {seq_len} rows, got {total}"));
    }
    if ids != total * per_row {
        return Err(format!(
            "the segments hold {total} rows but {ids} values were given ({per_row} per row)"
        ));
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(cache: usize, pos: usize, rows: usize) -> Segment {
        Segment { cache, pos, rows }
    }

    #[test]
    fn runs_stack_rows_and_last_rows_compact() {
        let segs = [seg(2, 5, 1), seg(0, 0, 3), seg(1, 9, 2)];
        let r: Vec<_> = runs(&segs)
            .map(|r| (r.row, r.rows, r.pos, r.cache))
            .collect();
        assert_eq!(r, [(0, 1, 5, 2), (1, 3, 0, 0), (4, 2, 9, 1)]);
        let l: Vec<_> = tail_runs(&segs, true).map(|r| (r.row, r.pos)).collect();
        assert_eq!(l, [(0, 5), (1, 2), (2, 10)]);
        // Rows of two values, row r holding r·10 and r·10 + 1.
        let mut buf: Vec<f32> = (0..6)
            .flat_map(|r| [r as f32 * 10.0, r as f32 * 10.0 + 1.0])
            .collect();
        compact_last_rows(&mut buf, 2, &segs);
        assert_eq!(&buf[..6], &[0.0, 1.0, 30.0, 31.0, 50.0, 51.0]);
    }

    #[test]
    fn bad_steps_are_refused() {
        use crate::kv::{KvCache, KvFormat};
        let f32s = KvFormat::F32;
        let caches = vec![KvCache::F32(vec![0.0; 4]); 2];
        let ok = check(3, 1, &[seg(0, 0, 2), seg(1, 7, 1)], &caches, 4, 8, f32s);
        assert_eq!(ok, Ok(3));
        let err = |segs: &[Segment], ids| check(ids, 1, segs, &caches, 4, 8, f32s).unwrap_err();
        assert!(err(&[], 0).contains("at least one"));
        assert!(err(&[seg(0, 0, 0)], 0).contains("no rows"));
        assert!(err(&[seg(0, 7, 2)], 2).contains("beyond"));
        assert!(err(&[seg(5, 0, 1)], 1).contains("does not exist"));
        assert!(err(&[seg(0, 0, 1), seg(0, 1, 1)], 2).contains("two segments"));
        assert!(err(&[seg(0, 0, 5), seg(1, 0, 5)], 10).contains("at most 8"));
        assert!(err(&[seg(0, 0, 2)], 3).contains("2 rows but 3"));
        let small = vec![KvCache::F32(vec![0.0; 3])];
        assert!(check(1, 1, &[seg(0, 0, 1)], &small, 4, 8, f32s)
            .unwrap_err()
            .contains("holds 3 values"));
        let halves = vec![KvCache::new(KvFormat::F16, 4, 1)];
        assert!(check(1, 1, &[seg(0, 0, 1)], &halves, 4, 8, f32s)
            .unwrap_err()
            .contains("stores f16 values, the model's cache is f32"));
    }
}
