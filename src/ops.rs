//! Hand-written tensor operations the models need and Candle lacks or does slowly on CPU.
//!
//! Everything is channels-last, `(batch, rows, cols, channels)`. A 3x3 convolution is one
//! im2col gather plus one large matrix product (Candle's own conv2d backward goes through a
//! direct-loop `conv_transpose2d` on CPU and fails on mixed-parity shapes, TOOLCHAIN.md); a
//! depthwise 3x3 convolution and GroupNorm + affine + ReLU are each one pass over the data. On
//! CPU each is a custom op with a hand-written backward, parallel over rows or batch items and
//! summed in a fixed order (training stays bit-for-bit reproducible); elsewhere (CUDA) the same
//! computation is built from Candle ops, which Candle differentiates.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// The nine taps of a 3x3 "same" convolution (zero padding 1) with equal strides on both axes:
/// `(B, H, W, C)` in, `(B, ceil(H/s), ceil(W/s), 9 * C)` out, tap-major (`(dy * 3 + dx) * C + c`).
pub fn im2col3x3(x: &Tensor, stride: usize) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op1(Im2Col { stride })
    } else {
        im2col_generic(x, stride)
    }
}

/// The same gather from differentiable Candle ops (any device); the reference for the CPU op.
pub fn im2col_generic(x: &Tensor, s: usize) -> candle_core::Result<Tensor> {
    Tensor::cat(&taps3x3(x, s, s)?, 3)
}

struct Im2Col {
    stride: usize,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("custom op: input is not contiguous"),
    }
}

impl CustomOp1 for Im2Col {
    fn name(&self) -> &'static str {
        "im2col3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = l.shape().dims4()?;
        let x = f32_slice(s, l)?;
        let st = self.stride;
        let (ho, wo) = (h.div_ceil(st), w.div_ceil(st));
        let mut out = vec![0f32; b * ho * wo * 9 * c];
        if !out.is_empty() {
            out.par_chunks_mut(wo * 9 * c).enumerate().for_each(|(row, o)| {
                let (bi, i) = (row / ho, row % ho);
                for dy in 0..3 {
                    let Some(y) = (i * st + dy).checked_sub(1).filter(|&y| y < h) else {
                        continue;
                    };
                    let src_row = &x[(bi * h + y) * w * c..(bi * h + y + 1) * w * c];
                    for j in 0..wo {
                        for dx in 0..3 {
                            let Some(xx) = (j * st + dx).checked_sub(1).filter(|&v| v < w) else {
                                continue;
                            };
                            let dst = (j * 9 + dy * 3 + dx) * c;
                            o[dst..dst + c].copy_from_slice(&src_row[xx * c..(xx + 1) * c]);
                        }
                    }
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((b, ho, wo, 9 * c))))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let (_, h, w, _) = arg.dims4()?;
        let g = grad.contiguous()?.apply_op1_no_bwd(&Col2Im { stride: self.stride, h, w })?;
        Ok(Some(g))
    }
}

/// The adjoint of [`Im2Col`]: scatter-add each tap back to the pixel it came from.
struct Col2Im {
    stride: usize,
    h: usize,
    w: usize,
}

impl CustomOp1 for Col2Im {
    fn name(&self) -> &'static str {
        "col2im3x3"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, ho, wo, c9) = l.shape().dims4()?;
        let c = c9 / 9;
        let g = f32_slice(s, l)?;
        let (st, h, w) = (self.stride, self.h, self.w);
        let mut out = vec![0f32; b * h * w * c];
        if !out.is_empty() {
            // Each output row (b, y) gathers from the tap rows that read it: deterministic sums.
            out.par_chunks_mut(w * c).enumerate().for_each(|(row, o)| {
                let (bi, y) = (row / h, row % h);
                for dy in 0..3 {
                    // Output row i reads input row i*st + dy - 1 == y.
                    let t = y + 1;
                    if t < dy || (t - dy) % st != 0 {
                        continue;
                    }
                    let i = (t - dy) / st;
                    if i >= ho {
                        continue;
                    }
                    let grow = &g[(bi * ho + i) * wo * c9..(bi * ho + i + 1) * wo * c9];
                    for xx in 0..w {
                        let dst = &mut o[xx * c..(xx + 1) * c];
                        for dx in 0..3 {
                            let u = xx + 1;
                            if u < dx || (u - dx) % st != 0 {
                                continue;
                            }
                            let j = (u - dx) / st;
                            if j >= wo {
                                continue;
                            }
                            let src = &grow[(j * 9 + dy * 3 + dx) * c..][..c];
                            for (a, &v) in dst.iter_mut().zip(src) {
                                *a += v;
                            }
                        }
                    }
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((b, h, w, c))))
    }

    fn bwd(
        &self,
        _arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(&Im2Col { stride: self.stride })?))
    }
}

/// The adjoint of [`im2col3x3`] (CPU only): `(B, Ho, Wo, 9 * C)` back to `(B, H, W, C)`, each
/// tap added to the pixel it reads. With stride 1 and the taps mirrored, this is the "shift and
/// sum" half of a convolution computed as `x @ W` first: cheaper than im2col when the
/// convolution has fewer output than input channels (the decoder's).
pub fn col2im3x3(z: &Tensor, stride: usize, h: usize, w: usize) -> candle_core::Result<Tensor> {
    z.contiguous()?.apply_op1(Col2Im { stride, h, w })
}

/// Nearest-neighbour 2x upsampling of both spatial axes, `(B, H, W, C) -> (B, 2H, 2W, C)`, by a
/// broadcast (whose backward is a sum, so it has gradients; Candle's `upsample_nearest2d`
/// backward overwrites rather than accumulates the argument's gradient).
pub fn upsample2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, w, c) = x.dims4()?;
    x.reshape((b, h, 1, w, 1, c))?.broadcast_as((b, h, 2, w, 2, c))?.reshape((b, 2 * h, 2 * w, c))
}

/// Depth-to-space: `(B, H, W, 4 * K)` laid out `(dy, dx, k)` -> `(B, 2H, 2W, K)`.
pub fn pixel_shuffle2(x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, w, c4) = x.dims4()?;
    let k = c4 / 4;
    x.reshape((b, h, w, 2, 2, k))?.permute((0, 1, 3, 2, 4, 5))?.reshape((b, 2 * h, 2 * w, k))
}

/// Per-frame GroupNorm, affine and ReLU in one pass: `x` is `(B, T, F, C)`, statistics are
/// taken per `(b, t, group)` over `F x C / groups` values, `gamma` and `beta` are `(C)`.
/// On CPU a custom op (forward and backward each one parallel pass over the data, instead of the
/// dozen elementwise passes the composed version makes); elsewhere the composed ops.
pub fn group_norm_relu(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        let (_, _, f, c) = x.dims4()?;
        let op = GroupNormRelu { groups, eps: eps as f32, f, c };
        x.contiguous()?.apply_op3(&gamma.contiguous()?, &beta.contiguous()?, op)
    } else {
        group_norm_relu_generic(x, gamma, beta, groups, eps)
    }
}

/// The composed (differentiable, any-device) version of [`group_norm_relu`].
pub fn group_norm_relu_generic(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    groups: usize,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let (b, t, f, c) = x.dims4()?;
    let g = groups;
    let xg = x.reshape((b * t, f, g, c / g))?;
    let n = (f * (c / g)) as f64;
    let mean = (xg.sum_keepdim(3)?.sum_keepdim(1)? / n)?;
    let xc = xg.broadcast_sub(&mean)?;
    let var = (xc.sqr()?.sum_keepdim(3)?.sum_keepdim(1)? / n)?;
    let y = xc.broadcast_div(&(var + eps)?.sqrt()?)?.reshape((b, t, f, c))?;
    y.broadcast_mul(gamma)?.broadcast_add(beta)?.relu()
}

#[derive(Clone, Copy)]
struct GroupNormRelu {
    groups: usize,
    eps: f32,
    f: usize,
    c: usize,
}

/// A backward op's flat result: the input gradient `dx`, then the parameter gradient, the sum of
/// the per-block `partial`s (each `n` long) added in block order, so the total does not depend
/// on how rayon scheduled the blocks.
fn with_block_sums(mut dx: Vec<f32>, partial: Vec<Vec<f32>>, n: usize) -> (CpuStorage, Shape) {
    let mut sums = vec![0f32; n];
    for p in partial {
        sums.iter_mut().zip(p).for_each(|(a, v)| *a += v);
    }
    dx.extend(sums);
    let len = dx.len();
    (CpuStorage::F32(dx), Shape::from(len))
}

/// Frames per block of the parameter-gradient reduction: fixed, so sums do not depend on how
/// rayon schedules the blocks (training stays bit-for-bit reproducible).
const FRAMES_PER_BLOCK: usize = 16;

impl GroupNormRelu {
    /// Mean and 1/std of each group of one frame.
    fn stats(&self, frame: &[f32], out: &mut [(f32, f32)]) {
        let (g, cg) = (self.groups, self.c / self.groups);
        let n = (self.f * cg) as f32;
        for (gi, st) in out.iter_mut().enumerate().take(g) {
            let mut sum = 0f32;
            for fi in 0..self.f {
                sum += frame[fi * self.c + gi * cg..][..cg].iter().sum::<f32>();
            }
            let mean = sum / n;
            let mut var = 0f32;
            for fi in 0..self.f {
                var += frame[fi * self.c + gi * cg..][..cg]
                    .iter()
                    .map(|&v| (v - mean) * (v - mean))
                    .sum::<f32>();
            }
            *st = (mean, 1.0 / (var / n + self.eps).sqrt());
        }
    }
}

impl candle_core::CustomOp3 for GroupNormRelu {
    fn name(&self) -> &'static str {
        "group-norm-relu"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (x, gamma, beta) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let frame = self.f * self.c;
        let cg = self.c / self.groups;
        let mut out = vec![0f32; x.len()];
        out.par_chunks_mut(frame).zip(x.par_chunks(frame)).for_each(|(o, xf)| {
            let mut st = vec![(0f32, 0f32); self.groups];
            self.stats(xf, &mut st);
            for (oc, xc) in o.chunks_exact_mut(self.c).zip(xf.chunks_exact(self.c)) {
                for ch in 0..self.c {
                    let (mean, rstd) = st[ch / cg];
                    oc[ch] = ((xc[ch] - mean) * rstd * gamma[ch] + beta[ch]).max(0.0);
                }
            }
        });
        Ok((CpuStorage::F32(out), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let gb = Tensor::stack(&[gamma, beta], 0)?;
        let all = x.apply_op3_no_bwd(&gb, &grad.contiguous()?, &GroupNormReluBwd(*self))?;
        let n = x.elem_count();
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dgamma = all.narrow(0, n, self.c)?;
        let dbeta = all.narrow(0, n + self.c, self.c)?;
        Ok((Some(dx), Some(dgamma), Some(dbeta)))
    }
}

/// Backward of [`GroupNormRelu`] on `(x, [gamma; beta], dy)`: `[dx..., dgamma..., dbeta...]`.
struct GroupNormReluBwd(GroupNormRelu);

impl candle_core::CustomOp3 for GroupNormReluBwd {
    fn name(&self) -> &'static str {
        "group-norm-relu-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let p = self.0;
        let (x, gb, dy) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (gamma, beta) = gb.split_at(p.c);
        let frame = p.f * p.c;
        let cg = p.c / p.groups;
        let n = (p.f * cg) as f32;
        let block = FRAMES_PER_BLOCK * frame;
        let mut dx = vec![0f32; x.len()];
        // Per block: (dgamma, dbeta) partial sums.
        let partial: Vec<Vec<f32>> = dx
            .par_chunks_mut(block)
            .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
            .map(|(dxb, (xb, dyb))| {
                let mut acc = vec![0f32; 2 * p.c];
                let mut st = vec![(0f32, 0f32); p.groups];
                let mut sums = vec![(0f32, 0f32); p.groups];
                for ((dxf, xf), dyf) in
                    dxb.chunks_mut(frame).zip(xb.chunks(frame)).zip(dyb.chunks(frame))
                {
                    p.stats(xf, &mut st);
                    sums.iter_mut().for_each(|s| *s = (0.0, 0.0));
                    // Pass 1: masked dy, parameter sums, and the group sums of dxhat and
                    // dxhat * xhat. dx holds dxhat for now.
                    for ((dxc, xc), dyc) in dxf
                        .chunks_exact_mut(p.c)
                        .zip(xf.chunks_exact(p.c))
                        .zip(dyf.chunks_exact(p.c))
                    {
                        for ch in 0..p.c {
                            let (mean, rstd) = st[ch / cg];
                            let xhat = (xc[ch] - mean) * rstd;
                            let on = xhat * gamma[ch] + beta[ch] > 0.0;
                            let g = if on { dyc[ch] } else { 0.0 };
                            acc[ch] += g * xhat;
                            acc[p.c + ch] += g;
                            let dxhat = g * gamma[ch];
                            dxc[ch] = dxhat;
                            let s = &mut sums[ch / cg];
                            s.0 += dxhat;
                            s.1 += dxhat * xhat;
                        }
                    }
                    // Pass 2: dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)).
                    for (dxc, xc) in dxf.chunks_exact_mut(p.c).zip(xf.chunks_exact(p.c)) {
                        for ch in 0..p.c {
                            let (mean, rstd) = st[ch / cg];
                            let xhat = (xc[ch] - mean) * rstd;
                            let (s0, s1) = sums[ch / cg];
                            dxc[ch] = rstd * (dxc[ch] - s0 / n - xhat * s1 / n);
                        }
                    }
                }
                acc
            })
            .collect();
        Ok(with_block_sums(dx, partial, 2 * p.c))
    }
}

/// Depthwise 3x3 "same" convolution (zero padding 1) with strides `(sh, sw)`: `x` is
/// `(B, H, W, C)`, `w` is `(9, C)`, one row per tap (`dy * 3 + dx`); the result is
/// `(B, ceil(H/sh), ceil(W/sw), C)`. On CPU a custom op (one pass forward, one backward);
/// elsewhere [`depthwise3x3_generic`].
pub fn depthwise3x3(x: &Tensor, w: &Tensor, sh: usize, sw: usize) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == candle_core::DType::F32 {
        x.contiguous()?.apply_op2(&w.contiguous()?, Depthwise { sh, sw })
    } else {
        depthwise3x3_generic(x, w, sh, sw)
    }
}

/// The nine 3x3 taps of `x` (B, H, W, C) for "same" padding and strides `(sh, sw)`, each
/// `(B, H', W', C)`, in `dy * 3 + dx` order: differentiable Candle ops on any device.
pub fn taps3x3(x: &Tensor, sh: usize, sw: usize) -> candle_core::Result<Vec<Tensor>> {
    let (b, h, w, c) = x.dims4()?;
    let (ho, wo) = (h.div_ceil(sh), w.div_ceil(sw));
    // Padded sizes: one on the left, enough on the right for the last tap, divisible by stride.
    let hp = sh * (ho + 2usize.div_ceil(sh));
    let wp = sw * (wo + 2usize.div_ceil(sw));
    let xp = x.pad_with_zeros(1, 1, hp - h - 1)?.pad_with_zeros(2, 1, wp - w - 1)?;
    let xp = xp.reshape((b, hp / sh, sh, wp / sw, sw, c))?;
    let mut phases = Vec::with_capacity(sh * sw);
    for a in 0..sh {
        for bb in 0..sw {
            phases.push(xp.narrow(2, a, 1)?.narrow(4, bb, 1)?.squeeze(4)?.squeeze(2)?);
        }
    }
    let mut out = Vec::with_capacity(9);
    for i in 0..3 {
        for j in 0..3 {
            let p = &phases[(i % sh) * sw + (j % sw)];
            out.push(p.narrow(1, i / sh, ho)?.narrow(2, j / sw, wo)?);
        }
    }
    Ok(out)
}

/// [`depthwise3x3`] as nine shifted multiply-adds of Candle ops (any device; the reference for
/// the CPU op).
pub fn depthwise3x3_generic(
    x: &Tensor,
    w: &Tensor,
    sh: usize,
    sw: usize,
) -> candle_core::Result<Tensor> {
    let t = taps3x3(x, sh, sw)?;
    let mut acc = t[0].broadcast_mul(&w.get(0)?)?;
    for (k, tap) in t.iter().enumerate().skip(1) {
        acc = (acc + tap.broadcast_mul(&w.get(k)?)?)?;
    }
    Ok(acc)
}

#[derive(Clone, Copy)]
struct Depthwise {
    sh: usize,
    sw: usize,
}

/// Batch items per block of the weight-gradient reduction (fixed, as [`FRAMES_PER_BLOCK`]).
const ITEMS_PER_BLOCK: usize = 8;

impl Depthwise {
    /// The taps of output position `(i, j)` that land inside an `h x w` input:
    /// `(tap, input row, input column)`.
    fn taps(
        self,
        i: usize,
        j: usize,
        h: usize,
        w: usize,
    ) -> impl Iterator<Item = (usize, usize, usize)> {
        (0..9).filter_map(move |k| {
            let y = (i * self.sh + k / 3).checked_sub(1).filter(|&y| y < h)?;
            let x = (j * self.sw + k % 3).checked_sub(1).filter(|&x| x < w)?;
            Some((k, y, x))
        })
    }
}

impl candle_core::CustomOp2 for Depthwise {
    fn name(&self) -> &'static str {
        "depthwise3x3"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (b, h, w, c) = l1.shape().dims4()?;
        let (x, wt) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?);
        if wt.len() != 9 * c {
            candle_core::bail!("depthwise3x3: weights {:?} for {c} channels", l2.shape());
        }
        let (ho, wo) = (h.div_ceil(self.sh), w.div_ceil(self.sw));
        let mut out = vec![0f32; b * ho * wo * c];
        if !out.is_empty() {
            out.par_chunks_mut(wo * c).enumerate().for_each(|(row, o)| {
                let (bi, i) = (row / ho, row % ho);
                let xb = &x[bi * h * w * c..(bi + 1) * h * w * c];
                for (j, oc) in o.chunks_exact_mut(c).enumerate() {
                    // Taps in order, as the generic version adds them.
                    for (k, y, xx) in self.taps(i, j, h, w) {
                        let src = &xb[(y * w + xx) * c..][..c];
                        let wk = &wt[k * c..][..c];
                        for ((a, &v), &g) in oc.iter_mut().zip(src).zip(wk) {
                            *a += v * g;
                        }
                    }
                }
            });
        }
        Ok((CpuStorage::F32(out), Shape::from((b, ho, wo, c))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let all = x.apply_op3_no_bwd(w, &grad.contiguous()?, &DepthwiseBwd(*self))?;
        let n = x.elem_count();
        let dx = all.narrow(0, 0, n)?.reshape(x.shape())?;
        let dw = all.narrow(0, n, w.elem_count())?.reshape(w.shape())?;
        Ok((Some(dx), Some(dw)))
    }
}

/// Backward of [`Depthwise`] on `(x, w, dy)`: `[dx..., dw...]`.
struct DepthwiseBwd(Depthwise);

impl candle_core::CustomOp3 for DepthwiseBwd {
    fn name(&self) -> &'static str {
        "depthwise3x3-bwd"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let op = self.0;
        let (b, h, w, c) = l1.shape().dims4()?;
        let (_, ho, wo, _) = l3.shape().dims4()?;
        let (x, wt, dy) = (f32_slice(s1, l1)?, f32_slice(s2, l2)?, f32_slice(s3, l3)?);
        let (item_in, item_out) = (h * w * c, ho * wo * c);
        let mut dx = vec![0f32; b * item_in];
        let partial: Vec<Vec<f32>> = if b == 0 || item_in == 0 {
            Vec::new()
        } else {
            dx.par_chunks_mut(ITEMS_PER_BLOCK * item_in)
                .enumerate()
                .map(|(blk, dxb)| {
                    let mut dw = vec![0f32; 9 * c];
                    for (n, dxi) in dxb.chunks_mut(item_in).enumerate() {
                        let bi = blk * ITEMS_PER_BLOCK + n;
                        let xi = &x[bi * item_in..][..item_in];
                        let gi = &dy[bi * item_out..][..item_out];
                        for i in 0..ho {
                            for j in 0..wo {
                                let g = &gi[(i * wo + j) * c..][..c];
                                for (k, y, xx) in op.taps(i, j, h, w) {
                                    let at = (y * w + xx) * c;
                                    let (src, wk) = (&xi[at..at + c], &wt[k * c..][..c]);
                                    let dwk = &mut dw[k * c..][..c];
                                    for ch in 0..c {
                                        dwk[ch] += g[ch] * src[ch];
                                    }
                                    for ((d, &gv), &wv) in dxi[at..at + c].iter_mut().zip(g).zip(wk)
                                    {
                                        *d += gv * wv;
                                    }
                                }
                            }
                        }
                    }
                    dw
                })
                .collect()
        };
        Ok(with_block_sums(dx, partial, 9 * c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn ramp(dims: (usize, usize, usize, usize)) -> Tensor {
        let n = dims.0 * dims.1 * dims.2 * dims.3;
        let v: Vec<f32> = (0..n).map(|i| ((i * 7919) % 97) as f32 / 97.0 - 0.5).collect();
        Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
    }

    fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn taps_match_a_direct_strided_convolution() {
        let dev = Device::Cpu;
        let x = Tensor::arange(0f32, 2.0 * 5.0 * 4.0 * 3.0, &dev)
            .unwrap()
            .reshape((2, 5, 4, 3))
            .unwrap();
        let t = taps3x3(&x, 2, 2).unwrap();
        assert_eq!(t[0].dims(), &[2, 3, 2, 3]);
        let flat = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let at = |b: usize, i: isize, j: isize, c: usize| -> f32 {
            if i < 0 || j < 0 || i >= 5 || j >= 4 {
                0.0
            } else {
                flat[((b * 5 + i as usize) * 4 + j as usize) * 3 + c]
            }
        };
        for (k, tap) in t.iter().enumerate() {
            let (di, dj) = ((k / 3) as isize - 1, (k % 3) as isize - 1);
            let v = tap.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for b in 0..2 {
                for oi in 0..3 {
                    for oj in 0..2 {
                        for c in 0..3 {
                            let got = v[((b * 3 + oi) * 2 + oj) * 3 + c];
                            let want = at(b, 2 * oi as isize + di, 2 * oj as isize + dj, c);
                            assert_eq!(got, want, "tap {k} at {b},{oi},{oj},{c}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn cpu_depthwise_matches_the_generic_taps_and_their_gradients() {
        for (dims, sh, sw) in [
            ((2, 6, 8, 3), 1, 1),
            ((3, 8, 8, 4), 2, 2),
            ((2, 5, 7, 2), 2, 2),
            ((2, 5, 1, 3), 2, 1),
            ((1, 1, 6, 2), 1, 2),
            ((9, 4, 4, 2), 2, 2), // more items than one gradient block
        ] {
            let x = Var::from_tensor(&ramp(dims)).unwrap();
            let w = Var::from_tensor(
                &(ramp((1, 1, 9, dims.3)).reshape((9, dims.3)).unwrap() * 1.7).unwrap(),
            )
            .unwrap();
            let a = depthwise3x3(x.as_tensor(), w.as_tensor(), sh, sw).unwrap();
            let b = depthwise3x3_generic(x.as_tensor(), w.as_tensor(), sh, sw).unwrap();
            assert_eq!(a.dims(), b.dims(), "{dims:?} {sh}x{sw}");
            assert!(max_abs_diff(&a, &b) < 1e-6, "{dims:?} {sh}x{sw}");
            let wts = (ramp(a.dims4().unwrap()) + 0.25).unwrap();
            let ga = (&a * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&b * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &w] {
                let (p, q) = (ga.get(v).unwrap(), gb.get(v).unwrap());
                assert!(max_abs_diff(p, q) < 1e-5, "{dims:?} {sh}x{sw}: {p} vs {q}");
                assert!(p.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap() > 0.0);
            }
        }
    }

    #[test]
    fn cpu_im2col_matches_the_generic_gather_and_its_gradient() {
        for (dims, s) in [((2, 6, 8, 3), 1), ((2, 8, 8, 3), 2), ((1, 5, 7, 2), 2)] {
            let x = Var::from_tensor(&ramp(dims)).unwrap();
            let a = im2col3x3(x.as_tensor(), s).unwrap();
            let b = im2col_generic(x.as_tensor(), s).unwrap();
            assert_eq!(a.dims(), b.dims());
            assert!(max_abs_diff(&a, &b) < 1e-7);
            // Gradients of a weighted sum agree too.
            let wts = ramp(a.dims4().unwrap());
            let ga = (&a * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&b * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            let (ga, gb) = (ga.get(x.as_tensor()).unwrap(), gb.get(x.as_tensor()).unwrap());
            assert!(max_abs_diff(ga, gb) < 1e-5, "stride {s}");
        }
    }

    #[test]
    fn fused_group_norm_relu_matches_the_composed_ops_and_their_gradients() {
        let dev = Device::Cpu;
        let x = Var::from_tensor(&ramp((2, 5, 8, 6))).unwrap();
        let gamma =
            Var::from_tensor(&Tensor::new(&[1.0f32, 0.5, -0.7, 2.0, 1.2, 0.9], &dev).unwrap())
                .unwrap();
        let beta =
            Var::from_tensor(&Tensor::new(&[0.1f32, -0.2, 0.0, 0.3, -0.1, 0.05], &dev).unwrap())
                .unwrap();
        let wts = ramp((2, 5, 8, 6));
        for groups in [1, 2, 3] {
            let a = group_norm_relu(&x, &gamma, &beta, groups, 1e-5).unwrap();
            let b = group_norm_relu_generic(&x, &gamma, &beta, groups, 1e-5).unwrap();
            assert!(max_abs_diff(&a, &b) < 1e-5, "forward, {groups} groups");
            let ga = (&a * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            let gb = (&b * &wts).unwrap().sum_all().unwrap().backward().unwrap();
            for v in [&x, &gamma, &beta] {
                let (da, db) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
                assert!(max_abs_diff(da, db) < 1e-4, "gradient, {groups} groups");
            }
        }
        // The fingerprint encoder's layout: one item per frame, one group, more items than
        // one block of the parameter-gradient reduction.
        let x = Var::from_tensor(&ramp((20, 1, 12, 6))).unwrap();
        let wts = ramp((20, 1, 12, 6));
        let a = group_norm_relu(&x, &gamma, &beta, 1, 1e-5).unwrap();
        let b = group_norm_relu_generic(&x, &gamma, &beta, 1, 1e-5).unwrap();
        assert!(max_abs_diff(&a, &b) < 1e-5, "forward, one item a frame");
        let ga = (&a * &wts).unwrap().sum_all().unwrap().backward().unwrap();
        let gb = (&b * &wts).unwrap().sum_all().unwrap().backward().unwrap();
        for v in [&x, &gamma, &beta] {
            let (da, db) = (ga.get(v.as_tensor()).unwrap(), gb.get(v.as_tensor()).unwrap());
            assert!(max_abs_diff(da, db) < 1e-4, "gradient, one item a frame");
        }
    }

    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        // <im2col(x), g> == <x, col2im(g)> for both strides.
        for s in [1, 2] {
            let x = ramp((2, 6, 5, 3));
            let cols = im2col3x3(&x, s).unwrap();
            let g = ramp(cols.dims4().unwrap());
            let lhs = (&cols * &g).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            let back = col2im3x3(&g, s, 6, 5).unwrap();
            let rhs = (&x * &back).unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!((lhs - rhs).abs() < 1e-3, "stride {s}: {lhs} vs {rhs}");
        }
    }

    #[test]
    fn upsample_and_pixel_shuffle_place_values() {
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu).unwrap().reshape((1, 2, 2, 1)).unwrap();
        let u = upsample2(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(u, [0., 0., 1., 1., 0., 0., 1., 1., 2., 2., 3., 3., 2., 2., 3., 3.]);
        let y = Tensor::arange(0f32, 4.0, &Device::Cpu).unwrap().reshape((1, 1, 1, 4)).unwrap();
        let p = pixel_shuffle2(&y).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(p, [0., 1., 2., 3.]);
    }
}
