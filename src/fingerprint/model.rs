//! The fingerprint encoder in Candle: a stack of depthwise-separable convolution blocks over a
//! log-mel patch, then a split-head projection to a unit vector (Neural Audio Fingerprint's
//! layout, with the anime-audio paper's depthwise-separable blocks).
//!
//! Tensors are channels-last, `(batch, freq, time, channels)`, so that every pointwise
//! convolution is one large matrix product instead of one per batch item. The depthwise 3x3
//! convolution and GroupNorm(1, C) + ReLU are the fused ops of `crate::ops` (Candle's grouped
//! conv2d loops over groups, its strided conv2d backward fails on mixed-parity shapes
//! (TOOLCHAIN.md), its LayerNorm records no gradient, and the same computations composed from
//! elementwise ops made training memory-bound: 1.71 s a step at 256 bands, 0.43 s fused).
//! GroupNorm(1, C) over (freq, time, channels) is the LayerNorm the paper asks for.

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{Init, VarBuilder};

use crate::ops;
use serde::{Deserialize, Serialize};

/// Encoder hyper-parameters (the input shape comes from the front end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ModelConfig {
    /// Mel bands of the input patch.
    pub n_mels: usize,
    /// Frames of the input patch.
    pub n_frames: usize,
    /// Output channels of each block; the first block is a full 3x3 convolution (its input has
    /// one channel), the others are depthwise 3x3 + pointwise 1x1.
    pub channels: Vec<usize>,
    /// Embedding dimension (number of projection heads).
    pub dim: usize,
    /// Hidden width of each projection head.
    pub head_hidden: usize,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            n_mels: 256,
            n_frames: 32,
            channels: vec![16, 32, 64, 128, 256, 256, 512, 512],
            dim: 128,
            head_hidden: 32,
        }
    }
}

impl ModelConfig {
    /// Why this encoder cannot be built or cannot end in one embedding per patch, if so.
    pub fn problem(&self) -> Option<String> {
        let Some(&last) = self.channels.last() else { return Some("no blocks".into()) };
        if self.dim == 0 || self.head_hidden == 0 || self.channels.contains(&0) {
            return Some("widths and dims must be above 0".into());
        }
        if last % self.dim != 0 {
            return Some(format!("last block width {last} is not a multiple of dim {}", self.dim));
        }
        if self.shapes().last() != Some(&(1, 1)) {
            return Some(format!(
                "{} stride-2 blocks do not reduce a {}x{} patch to 1x1",
                self.channels.len(),
                self.n_mels,
                self.n_frames
            ));
        }
        None
    }

    /// Output (freq, time) size after each block: stride 2 on an axis while it is above 1.
    pub fn shapes(&self) -> Vec<(usize, usize)> {
        let mut hw = (self.n_mels, self.n_frames);
        self.channels
            .iter()
            .map(|_| {
                hw = (stride_out(hw.0), stride_out(hw.1));
                hw
            })
            .collect()
    }
}

fn stride_of(n: usize) -> usize {
    if n > 1 { 2 } else { 1 }
}

fn stride_out(n: usize) -> usize {
    n.div_ceil(stride_of(n))
}

/// GroupNorm(1, C) over everything but the batch axis, channels-last affine, then ReLU.
struct Norm {
    gamma: Tensor,
    beta: Tensor,
}

impl Norm {
    fn new(vb: &VarBuilder, c: usize) -> candle_core::Result<Self> {
        Ok(Self {
            gamma: vb.get_with_hints(c, "gamma", Init::Const(1.0))?,
            beta: vb.get_with_hints(c, "beta", Init::Const(0.0))?,
        })
    }

    fn forward_relu(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, h, w, c) = x.dims4()?;
        // One group per item: the (H, W) plane is one "frame" of the shared op.
        let flat = x.reshape((b, 1, h * w, c))?;
        ops::group_norm_relu(&flat, &self.gamma, &self.beta, 1, 1e-5)?.reshape((b, h, w, c))
    }
}

enum Spatial {
    /// Full 3x3 convolution from one input channel: weight (9, C_out).
    Stem(Tensor),
    /// Depthwise 3x3: weight (9, C), one row per tap.
    Depthwise(Tensor),
}

struct Block {
    spatial: Spatial,
    /// Pointwise 1x1: weight (C_in, C_out) and bias; absent on the stem.
    pointwise: Option<(Tensor, Tensor)>,
    norm: Norm,
}

impl Block {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (_, h, w, _) = x.dims4()?;
        let (sh, sw) = (stride_of(h), stride_of(w));
        let y = match &self.spatial {
            Spatial::Stem(wt) => {
                // im2col: (B, H', W', 9) @ (9, C) as one matrix product.
                let cols = if sh == sw {
                    ops::im2col3x3(x, sh)?
                } else {
                    Tensor::cat(&ops::taps3x3(x, sh, sw)?, 3)?
                };
                let (b, ho, wo, k) = cols.dims4()?;
                cols.reshape((b * ho * wo, k))?.matmul(wt)?.reshape((b, ho, wo, wt.dim(1)?))?
            }
            Spatial::Depthwise(wt) => ops::depthwise3x3(x, wt, sh, sw)?,
        };
        let y = match &self.pointwise {
            Some((pw, bias)) => {
                let (b, ho, wo, c) = y.dims4()?;
                y.reshape((b * ho * wo, c))?.matmul(pw)?.broadcast_add(bias)?.reshape((
                    b,
                    ho,
                    wo,
                    pw.dim(1)?,
                ))?
            }
            None => y,
        };
        self.norm.forward_relu(&y)
    }
}

/// The encoder: log-mel patches (B, n_mels, n_frames) in, unit vectors (B, dim) out.
pub struct Encoder {
    cfg: ModelConfig,
    blocks: Vec<Block>,
    /// Per-head first layer (dim, split, hidden), bias (dim, 1, hidden), second (dim, hidden, 1),
    /// bias (dim, 1, 1).
    head: [Tensor; 4],
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("cfg", &self.cfg).finish()
    }
}

impl Encoder {
    /// Build the encoder, taking (or creating, for a `VarMap`-backed builder) its parameters.
    pub fn new(cfg: &ModelConfig, vb: VarBuilder) -> candle_core::Result<Self> {
        if let Some(problem) = cfg.problem() {
            return Err(candle_core::Error::Msg(problem));
        }
        let last = cfg.channels.last().copied().unwrap_or_default();
        let mut blocks = Vec::with_capacity(cfg.channels.len());
        let mut c_in = 1;
        for (i, &c) in cfg.channels.iter().enumerate() {
            let vb = vb.pp(format!("block{i}"));
            let block = if i == 0 {
                let std = (2.0 / 9.0f64).sqrt();
                Block {
                    spatial: Spatial::Stem(vb.get_with_hints((9, c), "conv", normal(std))?),
                    pointwise: None,
                    norm: Norm::new(&vb.pp("norm"), c)?,
                }
            } else {
                let std = (2.0 / c_in as f64).sqrt();
                Block {
                    spatial: Spatial::Depthwise(vb.get_with_hints(
                        (9, c_in),
                        "depthwise",
                        normal((1.0f64 / 3.0).sqrt()),
                    )?),
                    pointwise: Some((
                        vb.get_with_hints((c_in, c), "pointwise", normal(std))?,
                        vb.get_with_hints(c, "pointwise_bias", Init::Const(0.0))?,
                    )),
                    norm: Norm::new(&vb.pp("norm"), c)?,
                }
            };
            blocks.push(block);
            c_in = c;
        }
        let split = last / cfg.dim;
        let hb = vb.pp("head");
        let u = cfg.head_hidden;
        let head = [
            hb.get_with_hints((cfg.dim, split, u), "w1", normal((2.0 / split as f64).sqrt()))?,
            hb.get_with_hints((cfg.dim, 1, u), "b1", Init::Const(0.0))?,
            hb.get_with_hints((cfg.dim, u, 1), "w2", normal((1.0 / u as f64).sqrt()))?,
            hb.get_with_hints((cfg.dim, 1, 1), "b2", Init::Const(0.0))?,
        ];
        Ok(Self { cfg: cfg.clone(), blocks, head })
    }

    /// The configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.cfg
    }

    /// Embed a batch of normalised log-mel patches `(B, n_mels, n_frames)` into `(B, dim)` unit
    /// vectors.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut h = x.unsqueeze(3)?;
        for block in &self.blocks {
            h = block.forward(&h)?;
        }
        let b = h.dim(0)?;
        let dim = self.cfg.dim;
        // (B, 1, 1, C) -> (dim, B, split): each head sees its own slice of channels.
        let h = h.reshape((b, dim, ()))?.transpose(0, 1)?.contiguous()?;
        let [w1, b1, w2, b2] = &self.head;
        let h = h.matmul(w1)?.broadcast_add(b1)?.elu(1.0)?;
        let h = h.matmul(w2)?.broadcast_add(b2)?; // (dim, B, 1)
        let z = h.squeeze(2)?.t()?; // (B, dim)
        let norm = (z.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
        z.broadcast_div(&norm)
    }
}

/// The initial standard deviation of a parameter by name and shape (He-style on fan-in), or
/// `None` for norms and biases (constants). Training initialises from a seeded RNG with these.
pub fn init_std(name: &str, dims: &[usize]) -> Option<f64> {
    let leaf = name.rsplit('.').next().unwrap_or(name);
    match (leaf, dims) {
        ("conv", [k, _]) => Some((2.0 / *k as f64).sqrt()),
        ("depthwise", _) => Some((1.0f64 / 3.0).sqrt()),
        ("pointwise", [c_in, _]) => Some((2.0 / *c_in as f64).sqrt()),
        ("w1", [_, split, _]) => Some((2.0 / *split as f64).sqrt()),
        ("w2", [_, u, _]) => Some((1.0 / *u as f64).sqrt()),
        _ => None,
    }
}

fn normal(stdev: f64) -> Init {
    Init::Randn { mean: 0.0, stdev }
}

/// NT-Xent (SimCLR) loss for a batch laid out as `[anchors; positives]`, `(2N, dim)` unit
/// vectors: each row's partner is its positive, every other row a negative.
pub fn nt_xent(z: &Tensor, temperature: f64) -> candle_core::Result<Tensor> {
    nt_xent_with_memory(z, None, None, temperature)
}

/// [`nt_xent`] with extra negatives: `memory`, `(M, dim)` unit vectors kept from earlier
/// batches (a cross-batch memory, Wang et al. 2020). A batch of 128 pairs offers each row 254
/// negatives, a search offers it tens of thousands; the memory closes part of that gap for the
/// price of one `(2N, M)` product, without a momentum encoder (fingerprints drift slowly once
/// training has settled, so the stored vectors stay comparable).
/// `memory` comes with an additive `(2N, M)` mask (0, or a large negative number to hide a
/// stored row from a batch row, e.g. one holding the same audio); `same` is the like mask
/// over the batch's own `(2N, 2N)` similarities (rows of one loop are not each other's
/// negatives).
pub fn nt_xent_with_memory(
    z: &Tensor,
    memory: Option<(&Tensor, &Tensor)>,
    same: Option<&Tensor>,
    temperature: f64,
) -> candle_core::Result<Tensor> {
    let n2 = z.dim(0)?;
    let n = n2 / 2;
    let dev = z.device();
    let sim = (z.matmul(&z.t()?)? / temperature)?;
    // Mask self-similarity out of the softmax.
    let eye = Tensor::eye(n2, DType::F32, dev)?;
    let mut sim = (sim - (eye * 1e9)?)?;
    if let Some(same) = same {
        sim = (sim + same)?;
    }
    if let Some((m, mask)) = memory.filter(|(m, _)| m.dim(0).is_ok_and(|r| r > 0)) {
        let extra = ((z.matmul(&m.detach().t()?)? / temperature)? + mask)?;
        sim = Tensor::cat(&[&sim, &extra], 1)?;
    }
    let logp = candle_nn::ops::log_softmax(&sim, D::Minus1)?;
    let partner: Vec<u32> = (0..n2).map(|i| ((i + n) % n2) as u32).collect();
    let partner = Tensor::from_vec(partner, (n2, 1), dev)?;
    let picked = logp.gather(&partner, 1)?;
    picked.mean_all()?.neg()
}

/// All trainable variables of a `VarMap`, in a stable (name) order.
pub fn sorted_vars(map: &candle_nn::VarMap) -> Vec<(String, Var)> {
    let data = map.data().lock().map(|d| d.clone()).unwrap_or_default();
    let mut v: Vec<(String, Var)> = data.into_iter().collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

/// A CPU device, or CUDA when asked for and compiled in.
pub fn device(cuda: bool) -> candle_core::Result<Device> {
    if cuda { Device::new_cuda(0) } else { Ok(Device::Cpu) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_nn::VarMap;

    fn small() -> ModelConfig {
        ModelConfig {
            n_mels: 64,
            n_frames: 32,
            channels: vec![8, 16, 16, 32, 32, 32, 64, 64],
            dim: 16,
            head_hidden: 8,
        }
    }

    #[test]
    fn shapes_collapse_to_one() {
        assert_eq!(ModelConfig::default().shapes().last(), Some(&(1, 1)));
        assert_eq!(small().shapes()[..3], [(32, 16), (16, 8), (8, 4)]);
    }

    #[test]
    fn zero_weights_give_the_right_shapes_and_finite_zeros() {
        // Zero weights give zero vectors (no direction to normalise): the shape is what counts,
        // and the normalisation must not divide by zero.
        let cfg = small();
        let vb = VarBuilder::zeros(DType::F32, &Device::Cpu);
        let enc = Encoder::new(&cfg, vb).unwrap();
        let x = Tensor::zeros((3, cfg.n_mels, cfg.n_frames), DType::F32, &Device::Cpu).unwrap();
        let z = enc.forward(&x).unwrap();
        assert_eq!(z.dims(), &[3, cfg.dim]);
        let v = z.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|x| *x == 0.0), "{v:?}");
    }

    #[test]
    fn outputs_are_unit_vectors_and_every_parameter_gets_a_gradient() {
        let cfg = small();
        let map = VarMap::new();
        let vb = VarBuilder::from_varmap(&map, DType::F32, &Device::Cpu);
        let enc = Encoder::new(&cfg, vb).unwrap();
        let x = Tensor::randn(0f32, 1.0, (8, cfg.n_mels, cfg.n_frames), &Device::Cpu).unwrap();
        let z = enc.forward(&x).unwrap();
        let norms = z.sqr().unwrap().sum(1).unwrap().to_vec1::<f32>().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-4), "{norms:?}");
        let loss = nt_xent(&z, 0.1).unwrap();
        let grads = loss.backward().unwrap();
        for (name, var) in sorted_vars(&map) {
            let g = grads.get(var.as_tensor()).unwrap_or_else(|| panic!("no gradient for {name}"));
            let mag = g.abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert!(mag > 0.0, "zero gradient for {name}");
        }
    }

    #[test]
    fn memory_negatives_raise_the_loss_only_when_they_resemble_the_rows() {
        let dev = Device::Cpu;
        let a = Tensor::eye(4, DType::F32, &dev).unwrap();
        let z = Tensor::cat(&[&a, &a], 0).unwrap();
        let plain = nt_xent(&z, 0.1).unwrap().to_scalar::<f32>().unwrap();
        let mask = |m: usize, v: f32| Tensor::full(v, (8, m), &dev).unwrap();
        let empty = Tensor::zeros((0, 4), DType::F32, &dev).unwrap();
        let same = nt_xent_with_memory(&z, Some((&empty, &mask(0, 0.0))), None, 0.1).unwrap();
        assert_eq!(same.to_scalar::<f32>().unwrap(), plain);
        // Memory at similarity 0 to every row: as harmless as the batch's own orthogonal rows.
        let far = Tensor::zeros((3, 4), DType::F32, &dev).unwrap();
        let with_far = nt_xent_with_memory(&z, Some((&far, &mask(3, 0.0))), None, 0.1).unwrap();
        assert!(with_far.to_scalar::<f32>().unwrap() < 0.01);
        // A memory holding the rows themselves is as confusing as the positives...
        let near = nt_xent_with_memory(&z, Some((&a, &mask(4, 0.0))), None, 0.1).unwrap();
        let near = near.to_scalar::<f32>().unwrap();
        assert!((near - 2f32.ln()).abs() < 1e-3, "{near}");
        // ...unless the mask hides them.
        let hidden = nt_xent_with_memory(&z, Some((&a, &mask(4, -1e9))), None, 0.1).unwrap();
        assert_eq!(hidden.to_scalar::<f32>().unwrap(), plain);
    }

    #[test]
    fn nt_xent_is_low_for_matching_pairs_and_high_for_swapped() {
        let dev = Device::Cpu;
        let a = Tensor::eye(4, DType::F32, &dev).unwrap();
        let good = Tensor::cat(&[&a, &a], 0).unwrap();
        let rolled =
            Tensor::cat(&[a.narrow(0, 1, 3).unwrap(), a.narrow(0, 0, 1).unwrap()], 0).unwrap();
        let bad = Tensor::cat(&[&a, &rolled], 0).unwrap();
        let lg = nt_xent(&good, 0.1).unwrap().to_scalar::<f32>().unwrap();
        let lb = nt_xent(&bad, 0.1).unwrap().to_scalar::<f32>().unwrap();
        assert!(lg < 0.01 && lb > 5.0, "good {lg} bad {lb}");
    }
}
