//! Hand-written tensor operations the U-Net needs and Candle lacks or does slowly on CPU.
//!
//! Everything is channels-last, `(batch, time, freq, channels)`, so a 3x3 convolution is one
//! im2col gather plus one large matrix product (Candle's own conv2d backward goes through a
//! direct-loop `conv_transpose2d` on CPU and fails on mixed-parity shapes, TOOLCHAIN.md). On CPU
//! the gather is a custom op with a scatter-add backward, parallel over rows; elsewhere (CUDA) the
//! same gather is built from pads, narrows and a concatenation, which Candle differentiates.

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
    let (b, h, w, c) = x.dims4()?;
    let (ho, wo) = (h.div_ceil(s), w.div_ceil(s));
    // Padded sizes: one on the left, enough on the right for the last tap, divisible by stride.
    let hp = s * (ho + 2usize.div_ceil(s));
    let wp = s * (wo + 2usize.div_ceil(s));
    let xp = x.pad_with_zeros(1, 1, hp - h - 1)?.pad_with_zeros(2, 1, wp - w - 1)?;
    let xp = xp.reshape((b, hp / s, s, wp / s, s, c))?;
    let mut taps = Vec::with_capacity(9);
    for dy in 0..3 {
        for dx in 0..3 {
            let phase = xp.narrow(2, dy % s, 1)?.narrow(4, dx % s, 1)?;
            let phase = phase.reshape((b, hp / s, wp / s, c))?;
            taps.push(phase.narrow(1, dy / s, ho)?.narrow(2, dx / s, wo)?);
        }
    }
    Tensor::cat(&taps, 3)
}

struct Im2Col {
    stride: usize,
}

fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout) -> candle_core::Result<&'a [f32]> {
    let data = s.as_slice::<f32>()?;
    match l.contiguous_offsets() {
        Some((a, b)) => Ok(&data[a..b]),
        None => candle_core::bail!("separator op: input is not contiguous"),
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
    fn upsample_and_pixel_shuffle_place_values() {
        let x = Tensor::arange(0f32, 4.0, &Device::Cpu).unwrap().reshape((1, 2, 2, 1)).unwrap();
        let u = upsample2(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(u, [0., 0., 1., 1., 0., 0., 1., 1., 2., 2., 3., 3., 2., 2., 3., 3.]);
        let y = Tensor::arange(0f32, 4.0, &Device::Cpu).unwrap().reshape((1, 1, 1, 4)).unwrap();
        let p = pixel_shuffle2(&y).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_eq!(p, [0., 1., 2., 3.]);
    }
}
