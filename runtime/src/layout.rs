//! How the kernels' operands are laid out in memory: strided matrices (`Layout`), the
//! largest tensor rank the strided kernels walk, and the column panels the compiler stores
//! Linear weights in (`NR` columns each, the depth grouped for the bf16 and int8 formats).
//! Plain data and index arithmetic, above `cpu` beside `elem`; every kernel family uses it.

/// Largest tensor rank the strided kernels walk.
pub const MAX_RANK: usize = 8;

/// Matrix layout for `matmul`: element strides of rows and columns.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Elements from one row to the next.
    pub row_stride: isize,
    /// Elements from one column to the next.
    pub col_stride: isize,
}

impl Layout {
    /// Rows of `cols` contiguous elements.
    pub fn row_major(cols: usize) -> Layout {
        Layout {
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// Columns of `rows` contiguous elements (a transposed row-major matrix).
    pub fn col_major(rows: usize) -> Layout {
        Layout {
            row_stride: 1,
            col_stride: rows as isize,
        }
    }
}

/// Columns of a weight panel (`gemm::linear`, `bf16`, `q8`), which is also the width of the
/// packed GEMM's micro-kernel (three 16-lane vectors).
pub const NR: usize = 48;

/// Elements of a `[k, n]` weight in panels whose depth is taken `g` rows at a time (bf16
/// pairs, int8 quads: one column's `g` consecutive weights side by side, what a dot-product
/// instruction multiplies with `g` inputs), the depth padded to a multiple of `g`.
pub(crate) fn grouped_len(k: usize, n: usize, g: usize) -> usize {
    n.div_ceil(NR) * k.next_multiple_of(g) * NR
}

/// Index of weight `(p, j)` of a `k`-deep matrix in panels grouped `g` rows at a time.
pub(crate) fn grouped_index(k: usize, g: usize, p: usize, j: usize) -> usize {
    (j / NR) * k.next_multiple_of(g) * NR + (p / g) * g * NR + (j % NR) * g + p % g
}
