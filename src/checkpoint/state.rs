//! The train state `--resume` reads, `train-state.safetensors`: the flat parameters, Adam's
//! moments, and the epoch and step in the metadata.

use super::CheckpointError;
use super::tensors::{f32_bytes, meta_number, metadata, serialize, tensor_f32};
use crate::core::AdamState;
use crate::model::{Model, ModelConfig, Network};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

/// What `--resume` restores.
pub struct TrainState {
    pub model: Model,
    pub adam: AdamState,
    /// Completed epochs.
    pub epoch: usize,
}

/// A train state as `train-state.safetensors` bytes: the flat parameters, Adam's moments, and
/// the epoch and step in the metadata.
pub fn state_bytes(model: &Model, adam: &AdamState, epoch: usize) -> Vec<u8> {
    let n = model.params.len();
    let (p, m, v) = (f32_bytes(&model.params), f32_bytes(&adam.m), f32_bytes(&adam.v));
    fn view(b: &[u8], n: usize) -> TensorView<'_> {
        TensorView::new(Dtype::F32, vec![n], b).expect("sizes match")
    }
    let tensors = [("params", view(&p, n)), ("exp_avg", view(&m, n)), ("exp_avg_sq", view(&v, n))];
    let meta = HashMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), adam.step.to_string()),
        ("format".to_string(), "vae-train-state-1".to_string()),
    ]);
    serialize(tensors, meta)
}

/// Parses a train state (`train-state.safetensors`) for `config`: parameters, Adam moments
/// and progress.
///
/// # Errors
/// [`CheckpointError::Corrupt`] if the bytes are not safetensors, a tensor is missing or has
/// the wrong shape, or the metadata lacks the epoch or step.
pub fn state_from_bytes(bytes: &[u8], config: &ModelConfig, path: &Path) -> Result<TrainState, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    let meta = metadata(bytes, path)?;
    let network = Network::new(config.clone());
    let n = [network.layout.len];
    let params = tensor_f32(&st, "params", &n, path)?;
    let m = tensor_f32(&st, "exp_avg", &n, path)?;
    let v = tensor_f32(&st, "exp_avg_sq", &n, path)?;
    let epoch = meta_number(&meta, "epoch", path)? as usize;
    let step = meta_number(&meta, "step", path)?;
    Ok(TrainState { model: Model { network, params }, adam: AdamState { m, v, step }, epoch })
}
