//! Packing f32 operands into the bf16 pair layouts of the kernels (see the parent module):
//! the left operand in row blocks of [`MR`], the right one in column panels of [`NR`].
//!
//! Every layout a layer's product meets is packed a run at a time: a run of K values that
//! is contiguous in memory (a row of a row-major left operand, a column of a transposed right
//! one) is rounded into pairs in one vectorised pass and then interleaved; two K-adjacent
//! rows that are contiguous across M or N (a transposed left operand, a row-major right one)
//! are zipped into pairs lane by lane. Other strides go element by element.

use super::{MR, NR, pair, to_bf16};
use crate::core::matmul::Mat;
use crate::core::pool::{Pool, SyncMut, split_range};
use crate::core::simd::simd_fn;
use std::cell::RefCell;

simd_fn! {
    /// `out[i] = bf16(src[i])`, vectorised.
    fn round_run(src: &[f32], out: &mut [u16]) {
        for (h, &x) in out.iter_mut().zip(src) {
            *h = to_bf16(x);
        }
    }
}

simd_fn! {
    /// `out[j] = (lo[j], hi[j])` as bf16 pairs, vectorised.
    pub(crate) fn zip_two(lo: &[f32], hi: &[f32], out: &mut [u32]) {
        for ((o, &x), &y) in out.iter_mut().zip(lo).zip(hi) {
            *o = pair(x, y);
        }
    }
}

simd_fn! {
    /// `out[j] = (lo[j], 0)` as bf16 pairs, vectorised.
    pub(crate) fn zip_one(lo: &[f32], out: &mut [u32]) {
        for (o, &x) in out.iter_mut().zip(lo) {
            *o = pair(x, 0.0);
        }
    }
}

simd_fn! {
    /// `out[j] = (0, hi[j])` as bf16 pairs, vectorised.
    pub(crate) fn zip_hi(hi: &[f32], out: &mut [u32]) {
        for (o, &y) in out.iter_mut().zip(hi) {
            *o = pair(0.0, y);
        }
    }
}

/// `out[q] = (src[2q], src[2q + 1])` as a bf16 pair (the high half 0 past `src`'s end), for
/// `q < ⌈len/2⌉`: the pairs of a run of K values contiguous in memory.
pub(crate) fn run_pairs(src: &[f32], out: &mut [u32]) {
    let p = src.len().div_ceil(2);
    let out = &mut out[..p];
    let whole = src.len() / 2;
    if cfg!(target_endian = "little") {
        // SAFETY: a u32 is two u16s at the same address, the even-k one first on a
        // little-endian machine, so the pairs are the rounded run written in order.
        let halves = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr().cast::<u16>(), 2 * whole) };
        round_run(&src[..2 * whole], halves);
    } else {
        for (o, c) in out.iter_mut().zip(src.chunks_exact(2)) {
            *o = pair(c[0], c[1]);
        }
    }
    if whole < p {
        out[whole] = pair(src[2 * whole], 0.0);
    }
}

/// `out[j] = (lo[j], hi[j])` as bf16 pairs (`hi` 0 when absent: an odd K's last pair).
fn zip_pairs(lo: &[f32], hi: Option<&[f32]>, out: &mut [u32]) {
    match hi {
        Some(hi) => zip_two(lo, hi, out),
        None => zip_one(lo, out),
    }
}

/// How a view's K runs lie in memory.
enum Runs<'a> {
    /// Each of the `lines` (rows of a left operand, columns of a right one) holds its K
    /// values contiguously: `line(i)` is that run.
    Contiguous(Box<dyn Fn(usize) -> &'a [f32] + 'a>),
    /// Each k holds its lines contiguously: `across(k)` is that run of lines.
    Across(Box<dyn Fn(usize) -> &'a [f32] + 'a>),
    /// Neither: element by element.
    Strided,
}

/// The runs of `m` seen with `lines` rows and K columns (a right operand is passed
/// transposed).
fn runs<'a>(m: Mat<'a>) -> Runs<'a> {
    let (lines, k) = (m.rows(), m.cols());
    if let Some(rs) = m.unit_col_stride() {
        let data = m.data();
        return Runs::Contiguous(Box::new(move |i| &data[i * rs..i * rs + k]));
    }
    if let Some(cs) = m.t().unit_col_stride() {
        let data = m.data();
        return Runs::Across(Box::new(move |p| &data[p * cs..p * cs + lines]));
    }
    Runs::Strided
}

/// Bytes of the runs that [`pack_lines`] rounds before transposing them: a slice of L2.
const CHUNK_BYTES: usize = 64 << 10;

/// Packs `lines` `first..first + count` of `m` (K columns) into `dst`, group by group of `G`
/// lines: `dst[(g·P + q)·G + l] = (m[first + g·G + l, 2q], m[…, 2q + 1])`, the lines past
/// `m`'s end padded with 0. `tmp` is scratch.
fn pack_lines<const G: usize>(m: &Mat, first: usize, count: usize, dst: &mut [u32], tmp: &mut Vec<u32>) {
    let (lines, k) = (m.rows(), m.cols());
    let p = k.div_ceil(2);
    let runs = runs(*m);
    if let Runs::Across(across) = &runs {
        // SAFETY: `dst` is this call's alone, and holds `count` groups of `p` pairs.
        unsafe { zip_across::<G>(across, (lines, k), first, count, 0..p, SyncMut::new(dst), tmp) };
        return;
    }
    for g in 0..count {
        let start = first + g * G;
        let n = G.min(lines.saturating_sub(start));
        let out = &mut dst[g * p * G..(g + 1) * p * G];
        match &runs {
            Runs::Contiguous(line) => {
                // A slice of the pairs at a time, so that the runs wait in L2 for the
                // transpose: all of them at once (a colour model's output gradient: 64 runs
                // of 65,536 pairs, 16 MB of scratch) went out to memory and back (that
                // packing, one thread: 4.3 → 3.4 ms).
                let chunk = (CHUNK_BYTES / 4 / G / 16).max(1) * 16;
                grow(tmp, chunk.min(p) * G);
                for q0 in (0..p).step_by(chunk) {
                    let c = chunk.min(p - q0);
                    for l in 0..n {
                        let run = &line(start + l)[2 * q0..(2 * (q0 + c)).min(k)];
                        run_pairs(run, &mut tmp[l * c..(l + 1) * c]);
                    }
                    // The lines past `m`'s end as runs of zeros, so the transpose writes
                    // every lane (in whole tiles, and with one fill rather than one per pair).
                    tmp[n * c..G * c].fill(0);
                    transpose(&tmp[..G * c], G, c, &mut out[q0 * G..(q0 + c) * G], G);
                }
            }
            Runs::Across(_) => unreachable!("handled above"),
            Runs::Strided => {
                if n < G {
                    out.fill(0);
                }
                for q in 0..p {
                    for l in 0..n {
                        let hi = if 2 * q + 1 < k { m.at(start + l, 2 * q + 1) } else { 0.0 };
                        out[q * G + l] = pair(m.at(start + l, 2 * q), hi);
                    }
                }
            }
        }
    }
}

/// Packs pairs `qs` of the `count` groups of `G` lines from `first` of an operand whose k's
/// each hold their lines contiguously (`across(k)`; `lines` lines, K = `k`): the two k's of
/// a pair are zipped over all the groups' lines at once (vectorised), then dealt out,
/// `dst[(g·P + q)·G + l]` for group `g` counted from `first / G`, lines past the operand's
/// end as 0.
///
/// # Safety
/// `dst` holds `count · ⌈k/2⌉ · G` pairs, and no other thread accesses the pairs `qs` of
/// these groups during the call.
unsafe fn zip_across<'a, const G: usize>(
    across: &dyn Fn(usize) -> &'a [f32],
    (lines, k): (usize, usize),
    first: usize,
    count: usize,
    qs: std::ops::Range<usize>,
    dst: SyncMut<u32>,
    tmp: &mut Vec<u32>,
) {
    let p = k.div_ceil(2);
    let end = lines.min(first + count * G);
    let span = end.saturating_sub(first);
    grow(tmp, span);
    for q in qs {
        let lo = &across(2 * q)[first..end];
        let hi = (2 * q + 1 < k).then(|| &across(2 * q + 1)[first..end]);
        zip_pairs(lo, hi, &mut tmp[..span]);
        for g in 0..count {
            // SAFETY: pair q of group g, in `dst` and this call's (the contract).
            let out = unsafe { dst.slice((g * p + q) * G..(g * p + q + 1) * G) };
            let out: &mut [u32; G] = out.try_into().expect("a group's G pairs");
            match tmp[..span].get(g * G..(g + 1) * G) {
                // A whole group: a copy of G values the compiler lays out inline (a call to
                // `memcpy` for MR = 6 values, and one to `memset` for none, cost 4% of the
                // tutorial's bf16 step).
                Some(whole) => *out = whole.try_into().expect("G values"),
                None => {
                    let n = span.saturating_sub(g * G);
                    out[..n].copy_from_slice(&tmp[g * G..g * G + n]);
                    out[n..].fill(0);
                }
            }
        }
    }
}

/// Part `part` of `parts`' share of packing all `groups` groups of `G` lines of `m` (K
/// columns) into `dst`. Whole groups, except where each k holds its lines contiguously (a
/// transposed weight's rows, a features × batch activation's): there a range of pairs of
/// every group, so each part reads whole rows. Two threads reading the two halves of each
/// of a weight's rows made the next writes to those rows slow: the tutorial's Adam step took
/// 0.40 ms instead of 0.16 after the bf16 input gradient had packed `W₄ᵀ` so, on the Zen 4.
fn pack_share<const G: usize>(
    m: &Mat,
    groups: usize,
    dst: SyncMut<u32>,
    (parts, part): (usize, usize),
    tmp: &mut Vec<u32>,
) {
    let p = m.cols().div_ceil(2);
    if let Runs::Across(across) = runs(*m)
        && parts > 1
    {
        let qs = split_range(p, parts, part, 16);
        // SAFETY: `dst` holds every group's pairs; each part packs its own range of pairs.
        unsafe { zip_across::<G>(&across, (m.rows(), m.cols()), 0, groups, qs, dst, tmp) };
        return;
    }
    let r = split_range(groups, parts, part, 1);
    // SAFETY: each part owns its range of groups.
    let dst = unsafe { dst.slice(r.start * p * G..r.end * p * G) };
    pack_lines::<G>(m, r.start * G, r.len(), dst, tmp);
}

/// Makes the scratch `tmp` at least `len` long. Never shrinks it: products of different
/// sizes share each thread's scratch, and a shrink followed by a regrow would zero the
/// regrown part on every call (its contents are always written before they are read).
fn grow(tmp: &mut Vec<u32>, len: usize) {
    if tmp.len() < len {
        tmp.resize(len, 0);
    }
}

/// `dst[q·ld + l] = src[l·p + q]` for `l < n`, `q < p`: the `n` runs of `p` pairs dealt
/// out to their lanes. In 16 × 16 tiles transposed in registers where the CPU has AVX-512
/// (a run per lane is the layout's slow direction), six runs of a row block ([`MR`]) by
/// [`interleave6`], element by element elsewhere and for the edges.
pub(crate) fn transpose(src: &[u32], n: usize, p: usize, dst: &mut [u32], ld: usize) {
    assert!(src.len() >= n * p && (p == 0 || dst.len() >= (p - 1) * ld + n), "transpose: buffers");
    let (mut tn, mut tp) = (0, 0);
    #[cfg(target_arch = "x86_64")]
    if crate::core::simd::level() == crate::core::simd::Level::V4 && n == MR && ld == MR {
        // A row block of the left operand: its 16 pairs of 6 runs are 96 consecutive values.
        (tn, tp) = (MR, p / 16 * 16);
        for q in (0..tp).step_by(16) {
            // SAFETY: AVX-512 checked; the 6 runs hold pairs q..q+16, and dst the 96 values
            // from q·6 (asserted above).
            unsafe { interleave6(src.as_ptr().add(q), p, dst.as_mut_ptr().add(q * MR)) };
        }
    } else if crate::core::simd::level() == crate::core::simd::Level::V4 {
        (tn, tp) = (n / 16 * 16, p / 16 * 16);
        for l in (0..tn).step_by(16) {
            for q in (0..tp).step_by(16) {
                // SAFETY: AVX-512 checked; rows l..l+16 of src from q, and rows q..q+16 of
                // dst from l, are inside the buffers (asserted above).
                unsafe { transpose16(src.as_ptr().add(l * p + q), p, dst.as_mut_ptr().add(q * ld + l), ld) };
            }
        }
    }
    for l in 0..n {
        let qs = if l < tn { tp..p } else { 0..p };
        for q in qs {
            dst[q * ld + l] = src[l * p + q];
        }
    }
}

/// 16 values of each of 6 runs interleaved in registers: `dst[q·6 + l] = src[l·ls + q]` for
/// `q < 16`. Output value `o` of the 96 is run `o mod 6`'s lane `o / 6`: each of the six
/// output vectors is six masked lane permutations, one per run, sharing one index vector
/// (the lane does not depend on the run). Moving the values one by one took 7% of the
/// tutorial's bf16 step; this takes 1.6%.
///
/// # Safety
/// AVX-512F available; `src` valid for 6 runs of 16 at stride `ls`, `dst` for 96 writes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn interleave6(src: *const u32, ls: usize, dst: *mut u32) {
    use std::arch::x86_64::*;
    const { assert!(MR == 6, "interleave6 serves row blocks of 6") };
    // SAFETY: per the contract.
    let runs: [__m512i; 6] = std::array::from_fn(|l| unsafe { _mm512_loadu_si512(src.add(l * ls).cast()) });
    // Output vector k's lane j is value o = 16k + j: lane o / 6 of run o mod 6.
    const INDEX: [[i32; 16]; 6] = {
        let mut t = [[0; 16]; 6];
        let mut o = 0;
        while o < 96 {
            t[o / 16][o % 16] = (o / 6) as i32;
            o += 1;
        }
        t
    };
    const MASK: [[u16; 6]; 6] = {
        let mut t = [[0; 6]; 6];
        let mut o = 0;
        while o < 96 {
            t[o / 16][o % 6] |= 1 << (o % 16);
            o += 1;
        }
        t
    };
    for k in 0..6 {
        // SAFETY: a table of 16 i32.
        let index = unsafe { _mm512_loadu_si512(INDEX[k].as_ptr().cast()) };
        let mut out = _mm512_setzero_si512();
        for (l, &run) in runs.iter().enumerate() {
            out = _mm512_mask_permutexvar_epi32(out, MASK[k][l], index, run);
        }
        // SAFETY: per the contract.
        unsafe { _mm512_storeu_si512(dst.add(16 * k).cast(), out) };
    }
}

/// A 16 × 16 tile of u32s transposed in registers: `dst[j·lds + i] = src[i·ls + j]`, by the
/// implicit products' float transpose (shuffles only, so every bit pattern moves unchanged).
///
/// # Safety
/// AVX-512F available; `src` valid for 16 rows of 16 at stride `ls`, `dst` for 16 rows of
/// 16 at stride `lds`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(src: *const u32, ls: usize, dst: *mut u32, lds: usize) {
    use std::arch::x86_64::*;
    // SAFETY: per the contract.
    let r: [__m512; 16] = std::array::from_fn(|i| unsafe { _mm512_loadu_ps(src.add(i * ls).cast()) });
    for (j, row) in crate::core::implicit::transpose16(r).into_iter().enumerate() {
        // SAFETY: per the contract.
        unsafe { _mm512_storeu_ps(dst.add(j * lds).cast(), row) };
    }
}

thread_local! {
    /// Packing buffers kept between products on this thread (fresh ones would be zeroed
    /// pages each time).
    static SPARE: RefCell<Vec<Vec<u32>>> = const { RefCell::new(Vec::new()) };
    /// Each pool thread's interleaving scratch.
    static TMP: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// A buffer of at least `len` u32s from this thread's spares (contents stale: the packers
/// write every element).
pub(crate) fn take(len: usize) -> Vec<u32> {
    let mut v = SPARE.with_borrow_mut(|s| s.pop()).unwrap_or_default();
    if v.len() < len {
        v.resize(len, 0);
    }
    v
}

/// Returns a buffer from [`take`] to this thread's spares.
pub(crate) fn give_back(v: Vec<u32>) {
    SPARE.with_borrow_mut(|s| {
        if s.len() < 4 {
            s.push(v);
        }
    });
}

/// Packs `a` [M, K] in row blocks of [`MR`] and `b` [K, N] in column panels of [`NR`] into
/// `pa` and `pb` (either may be skipped), in one pass on the pool: each part packs its share
/// of both.
pub(super) fn pack(pool: &Pool, a: Option<(Mat, &mut [u32])>, b: Option<(Mat, &mut [u32])>) {
    let blocks = a.as_ref().map_or(0, |(a, _)| a.rows().div_ceil(MR));
    let panels = b.as_ref().map_or(0, |(b, _)| b.cols().div_ceil(NR));
    let (pa_len, pb_len) = (a.as_ref().map_or(0, |(a, _)| a.cols().div_ceil(2) * MR), {
        b.as_ref().map_or(0, |(b, _)| b.rows().div_ceil(2) * NR)
    });
    let (am, ad) = a.map_or((None, None), |(m, d)| (Some(m), Some(SyncMut::new(d))));
    let (bm, bd) = b.map_or((None, None), |(m, d)| (Some(m.t()), Some(SyncMut::new(d))));
    let work = blocks * pa_len + panels * pb_len;
    let parts = if work < 64 * 1024 { 1 } else { pool.threads() };
    let job = |part: usize| {
        TMP.with_borrow_mut(|tmp| {
            if let (Some(m), Some(d)) = (&am, ad) {
                pack_share::<MR>(m, blocks, d, (parts, part), tmp);
            }
            if let (Some(m), Some(d)) = (&bm, bd) {
                pack_share::<NR>(m, panels, d, (parts, part), tmp);
            }
        })
    };
    pool.run_parts(parts, &job);
}

/// Packs `b` [K, N] in column panels of [`NR`] into `dst` on the pool, each panel's pairs
/// split across the parts: a weight gradient's `eᵀ` is one or two panels wide (64 or 128
/// output channels) and tens of thousands of pairs deep, so splitting by panel, as [`pack`]
/// does, would leave it to one thread. Part `i` packs pairs `q ∈ Q_i` of every panel, which
/// are `dst[panel·P·NR + q·NR ..]`: `pack_lines` of the rows `2·Q_i` of `b` lays them out so.
pub(super) fn pack_b_by_pairs(pool: &Pool, b: Mat, dst: &mut [u32]) {
    let (k, panels) = (b.rows(), b.cols().div_ceil(NR));
    let p = k.div_ceil(2);
    let parts = if panels * p * NR < 64 * 1024 { 1 } else { pool.threads() };
    let d = SyncMut::new(&mut dst[..panels * p * NR]);
    pool.run_parts(parts, &|part| {
        let q = split_range(p, parts, part, 16);
        if q.is_empty() {
            return;
        }
        let rows = b.rows_range(2 * q.start..(2 * q.end).min(k)).t();
        TMP.with_borrow_mut(|tmp| {
            for panel in 0..panels {
                let at = panel * p * NR;
                // SAFETY: each part owns its pairs' range in every panel.
                let dst = unsafe { d.slice(at + q.start * NR..at + q.end * NR) };
                pack_lines::<NR>(&rows, panel * NR, 1, dst, tmp);
            }
        })
    });
}

/// Packs lines `first..first + G·count` of `m` (K columns) in groups of `G` into `dst` on the
/// calling thread: `dst[(g·P + q)·G + l] = (m[first + g·G + l, 2q], m[…, 2q + 1])`, 0 past
/// `m`'s lines (a right operand is passed transposed).
pub(super) fn pack_groups<const G: usize>(m: Mat, first: usize, count: usize, dst: &mut [u32]) {
    TMP.with_borrow_mut(|tmp| pack_lines::<G>(&m, first, count, dst, tmp));
}

/// Packs `a` [M, K] in row blocks of [`MR`] into `dst` on the calling thread.
pub(super) fn pack_a_serial(a: Mat, dst: &mut [u32]) {
    pack_a_blocks(a, 0..a.rows().div_ceil(MR), dst);
}

/// Packs row blocks `blocks` of `a` [M, K] into `dst` (block `blocks.start` first) on the
/// calling thread.
pub(super) fn pack_a_blocks(a: Mat, blocks: std::ops::Range<usize>, dst: &mut [u32]) {
    TMP.with_borrow_mut(|tmp| pack_lines::<MR>(&a, blocks.start * MR, blocks.len(), dst, tmp));
}

/// Packs column panels `panels` of `b` [K, N] into `dst` (panel `panels.start` first) on
/// the calling thread.
pub(super) fn pack_b_panels(b: Mat, panels: std::ops::Range<usize>, dst: &mut [u32]) {
    TMP.with_borrow_mut(|tmp| pack_lines::<NR>(&b.t(), panels.start * NR, panels.len(), dst, tmp));
}

/// Packs `b` [K, N] in column panels of [`NR`] into `dst` on the calling thread.
pub(super) fn pack_b_serial(b: Mat, dst: &mut [u32]) {
    TMP.with_borrow_mut(|tmp| pack_lines::<NR>(&b.t(), 0, b.cols().div_ceil(NR), dst, tmp));
}

/// Length of `a`'s packing ([M, K] in blocks of [`MR`]).
pub(super) fn a_len(a: &Mat) -> usize {
    a.rows().div_ceil(MR) * a.cols().div_ceil(2) * MR
}

/// Length of `b`'s packing ([K, N] in panels of [`NR`]).
pub(super) fn b_len(b: &Mat) -> usize {
    b.cols().div_ceil(NR) * b.rows().div_ceil(2) * NR
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The tiled transpose (AVX-512 where the CPU has it) against the definition, with edges
    /// on both sides and a wider destination stride.
    #[test]
    fn transpose_deals_every_run_to_its_lane() {
        let blocks = [(6, 9, 6), (6, 16, 6), (6, 50, 6), (6, 392, 6)];
        for (n, p, ld) in
            [(16, 16, 16), (64, 64, 64), (37, 50, 64), (64, 17, 64), (33, 16, 40)].into_iter().chain(blocks)
        {
            let src: Vec<u32> = (0..(n * p) as u32).map(|v| v.wrapping_mul(2_654_435_761)).collect();
            let mut dst = vec![u32::MAX; p * ld];
            transpose(&src, n, p, &mut dst, ld);
            for q in 0..p {
                for l in 0..ld {
                    let want = if l < n { src[l * p + q] } else { u32::MAX };
                    assert_eq!(dst[q * ld + l], want, "n {n} p {p} ld {ld}: q {q} l {l}");
                }
            }
        }
    }

    /// [`pack`] on two threads writes what one thread writes, whichever way each operand
    /// lies in memory: rows along K (split by blocks or panels) or K along the rows (split
    /// by pairs, every block's), with an odd K's half pair, remainders, and a K that does
    /// not divide into the pairs' split.
    #[test]
    fn pack_on_two_threads_writes_what_one_writes() {
        let (one, two) = (Pool::new(1), Pool::new(2));
        let (m, k, n) = (401, 783, 130);
        let a: Vec<f32> = (0..m * k).map(|i| (i as f32 * 0.37).sin()).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32 * 0.11).cos()).collect();
        // a [m, k] row-major holds K along each line, b [k, n] row-major the lines along
        // each k; stored transposed (and viewed back), each lies the other way.
        let (at, bt): (Vec<f32>, Vec<f32>) = (
            (0..m * k).map(|i| a[(i % m) * k + i / m]).collect(),
            (0..k * n).map(|i| b[(i % k) * n + i / k]).collect(),
        );
        let views = [(Mat::new(&a, m, k), Mat::new(&b, k, n)), (Mat::new(&at, k, m).t(), Mat::new(&bt, n, k).t())];
        for (va, vb) in views {
            let packed = |pool: &Pool| {
                let (mut pa, mut pb) = (vec![u32::MAX; a_len(&va)], vec![u32::MAX; b_len(&vb)]);
                pack(pool, Some((va, &mut pa)), Some((vb, &mut pb)));
                (pa, pb)
            };
            let ((a1, b1), (a2, b2)) = (packed(&one), packed(&two));
            assert!(!a1.contains(&u32::MAX) && !b1.contains(&u32::MAX), "a pair left unwritten");
            assert!(a1 == a2 && b1 == b2, "two threads differ from one");
            // Spot-check the layout: block 66's line 4 at pair 391 (its K = 782, past which
            // the half pair is 0), and panel 2's column 1 at pair 0.
            let p = k.div_ceil(2);
            assert_eq!(a2[(66 * p + 391) * MR + 4], pair(va.at(400, 782), 0.0));
            assert_eq!(b2[(2 * p) * NR + 1], pair(vb.at(0, 129), vb.at(1, 129)));
        }
    }
}
