//! Training plumbing shared by the models: Adam with decoupled weight decay and checkpointable
//! moments, the warm-up + cosine schedule, seeded initialisation, per-(step, item) RNG streams
//! and atomic checkpoints. Together they make a killed run resume to identical weights.

use std::path::Path;

use candle_core::{Device, Tensor, Var};
use candle_nn::VarMap;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::{Error, Result};

/// Adam (AdamW when `wd > 0`, applied to matrices only) over named variables.
pub struct Adam {
    vars: Vec<(String, Var)>,
    m: Vec<Tensor>,
    v: Vec<Tensor>,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam").field("vars", &self.vars.len()).finish()
    }
}

impl Adam {
    /// Zero moments for `vars`.
    pub fn new(vars: Vec<(String, Var)>) -> candle_core::Result<Self> {
        let m =
            vars.iter().map(|(_, v)| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        let v =
            vars.iter().map(|(_, v)| v.zeros_like()).collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Self { vars, m, v })
    }

    /// One update at step `t` (from 1).
    pub fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        wd: f64,
        t: usize,
    ) -> candle_core::Result<()> {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let c1 = 1.0 - b1.powi(t as i32);
        let c2 = 1.0 - b2.powi(t as i32);
        for (i, (_, var)) in self.vars.iter().enumerate() {
            // Detached: a gradient computed from variables carries the step's whole graph, and
            // moments built from it would keep every past step alive (an OOM in minutes).
            let Some(g) = grads.get(var.as_tensor()).map(Tensor::detach) else { continue };
            self.m[i] = ((&self.m[i] * b1)? + (&g * (1.0 - b1))?)?;
            self.v[i] = ((&self.v[i] * b2)? + (g.sqr()? * (1.0 - b2))?)?;
            let update = ((&self.m[i] / c1)? / ((&self.v[i] / c2)?.sqrt()? + eps)?)?;
            let w = var.as_tensor();
            let decayed =
                if w.rank() >= 2 && wd > 0.0 { (w * (1.0 - lr * wd))? } else { w.clone() };
            var.set(&(decayed - (update * lr)?)?)?;
        }
        Ok(())
    }

    /// Save the moments (safetensors, `m.<name>` and `v.<name>`).
    pub fn save(&self, path: &Path) -> candle_core::Result<()> {
        let mut map = std::collections::HashMap::new();
        for (i, (name, _)) in self.vars.iter().enumerate() {
            map.insert(format!("m.{name}"), self.m[i].clone());
            map.insert(format!("v.{name}"), self.v[i].clone());
        }
        candle_core::safetensors::save(&map, path)
    }

    /// Load moments saved by [`Adam::save`]; variables missing there keep zero moments.
    pub fn load(&mut self, path: &Path, device: &Device) -> candle_core::Result<()> {
        let map = candle_core::safetensors::load(path, device)?;
        for (i, (name, _)) in self.vars.iter().enumerate() {
            if let (Some(m), Some(v)) =
                (map.get(&format!("m.{name}")), map.get(&format!("v.{name}")))
            {
                self.m[i] = m.clone();
                self.v[i] = v.clone();
            }
        }
        Ok(())
    }
}

/// Linear warm-up to `peak` over `warmup` steps, then cosine decay to 5% of it at `steps`.
pub fn lr_at(peak: f64, warmup: usize, steps: usize, step: usize) -> f64 {
    if step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let p = (step - warmup) as f64 / (steps - warmup).max(1) as f64;
    peak * (0.05 + 0.95 * 0.5 * (1.0 + (std::f64::consts::PI * p.min(1.0)).cos()))
}

/// Deterministic initialisation from the seed (Candle's CPU RNG cannot be seeded): each
/// variable `std(name, dims)` says is random gets normal values with that deviation, in name
/// order; the others keep their constant initial values.
pub fn init_weights(
    vars: &[(String, Var)],
    seed: u64,
    std: impl Fn(&str, &[usize]) -> Option<f64>,
) -> candle_core::Result<()> {
    let mut rng = StdRng::seed_from_u64(seed);
    for (name, var) in vars {
        let dims = var.dims().to_vec();
        let Some(sd) = std(name, &dims) else { continue };
        let n: usize = dims.iter().product();
        let vals: Vec<f32> = (0..n).map(|_| (normal_sample(&mut rng) * sd) as f32).collect();
        var.set(&Tensor::from_vec(vals, dims, var.device())?)?;
    }
    Ok(())
}

fn normal_sample(rng: &mut StdRng) -> f64 {
    // Box-Muller.
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The RNG of item `item` of step `step`: batches are the same however a run was interrupted.
pub fn batch_rng(seed: u64, step: usize, item: usize) -> StdRng {
    // SplitMix-style mixing keeps neighbouring (step, item) streams unrelated.
    let mut z = seed
        ^ (step as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (item as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Where a run keeps its checkpoint.
#[derive(Debug, Clone)]
pub struct CheckpointPaths {
    /// Weights.
    pub weights: std::path::PathBuf,
    /// Optimiser moments.
    pub adam: std::path::PathBuf,
    /// Run state (JSON).
    pub state: std::path::PathBuf,
}

impl CheckpointPaths {
    /// The standard names inside a state directory.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            weights: dir.join("checkpoint.safetensors"),
            adam: dir.join("adam.safetensors"),
            state: dir.join("state.json"),
        }
    }
}

/// Load the checkpoint in `paths` into `map` and `adam` and return its run state, or `None`
/// when there is none yet (a fresh run).
pub fn load_checkpoint<S: serde::de::DeserializeOwned>(
    map: &VarMap,
    adam: &mut Adam,
    paths: &CheckpointPaths,
    device: &Device,
) -> Result<Option<S>> {
    if !(paths.weights.is_file() && paths.state.is_file()) {
        return Ok(None);
    }
    let mut m = map.clone();
    m.load(&paths.weights)?;
    adam.load(&paths.adam, device)?;
    let text = std::fs::read_to_string(&paths.state).map_err(|e| Error::io(&paths.state, e))?;
    let state = serde_json::from_str(&text)
        .map_err(|e| Error::Config { path: paths.state.clone(), reason: e.to_string() })?;
    Ok(Some(state))
}

/// Save weights, moments and state. Each is written beside its name, then renamed: a kill
/// leaves the previous set whole, or the new weights with the previous state (which resumes a
/// few steps early, harmlessly).
pub fn save_checkpoint(
    map: &VarMap,
    adam: &Adam,
    state: &impl Serialize,
    paths: &CheckpointPaths,
) -> Result<()> {
    let tmp = paths.weights.with_extension("partial");
    map.save(&tmp)?;
    let tmp_adam = paths.adam.with_extension("partial");
    adam.save(&tmp_adam)?;
    let tmp_state = paths.state.with_extension("partial");
    let json = serde_json::to_string_pretty(state).map_err(|e| Error::Invalid(e.to_string()))?;
    std::fs::write(&tmp_state, json).map_err(|e| Error::io(&tmp_state, e))?;
    std::fs::rename(&tmp_adam, &paths.adam).map_err(|e| Error::io(&paths.adam, e))?;
    std::fs::rename(&tmp, &paths.weights).map_err(|e| Error::io(&paths.weights, e))?;
    std::fs::rename(&tmp_state, &paths.state).map_err(|e| Error::io(&paths.state, e))
}

/// Write `weights.safetensors` and `card.toml` into `dir`, each beside its name then renamed.
pub fn write_model(map: &VarMap, card: &impl Serialize, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let w = dir.join("weights.safetensors");
    let tmp = dir.join("weights.partial");
    map.save(&tmp)?;
    std::fs::rename(&tmp, &w).map_err(|e| Error::io(&w, e))?;
    write_card(card, dir)
}

/// Write (or rewrite) `dir/card.toml` atomically.
pub fn write_card(card: &impl Serialize, dir: &Path) -> Result<()> {
    let text = toml::to_string_pretty(card).map_err(|e| Error::Invalid(e.to_string()))?;
    let c = dir.join("card.toml");
    let tmp = dir.join("card.partial");
    std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, &c).map_err(|e| Error::io(&c, e))
}

/// Floats in a card rounded to 4 decimals (f32 settings otherwise print as 0.30000001192092896).
pub fn round_floats(v: toml::Value) -> toml::Value {
    match v {
        toml::Value::Float(f) => toml::Value::Float((f * 1e4).round() / 1e4),
        toml::Value::Array(a) => toml::Value::Array(a.into_iter().map(round_floats).collect()),
        toml::Value::Table(t) => {
            toml::Value::Table(t.into_iter().map(|(k, v)| (k, round_floats(v))).collect())
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_warms_up_then_decays_to_five_percent() {
        assert!((lr_at(1.0, 10, 110, 0) - 0.1).abs() < 1e-12);
        assert!((lr_at(1.0, 10, 110, 9) - 1.0).abs() < 1e-12);
        assert!((lr_at(1.0, 10, 110, 110) - 0.05).abs() < 1e-9);
        assert!(lr_at(1.0, 10, 110, 60) < 1.0 && lr_at(1.0, 10, 110, 60) > 0.05);
    }

    #[test]
    fn batch_streams_are_reproducible_and_distinct() {
        let a: f64 = batch_rng(1, 2, 3).random();
        let b: f64 = batch_rng(1, 2, 3).random();
        let c: f64 = batch_rng(1, 2, 4).random();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
