//! Weights as safetensors, PyTorch's `state_dict` names and shapes in f32, with a
//! reproducible header.

use super::CheckpointError;
use crate::model::{Model, ModelConfig, Network, TensorInfo};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

pub(super) fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn tensor_f32(
    st: &SafeTensors,
    name: &str,
    shape: &[usize],
    path: &Path,
) -> Result<Vec<f32>, CheckpointError> {
    let t = st.tensor(name).map_err(|_| CheckpointError::corrupt(path, format!("tensor {name} is missing")))?;
    if t.dtype() != Dtype::F32 || t.shape() != shape {
        return Err(CheckpointError::corrupt(
            path,
            format!("tensor {name} is {:?} {:?}, expected F32 {shape:?}", t.dtype(), t.shape()),
        ));
    }
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect())
}

pub(super) fn metadata(bytes: &[u8], path: &Path) -> Result<HashMap<String, String>, CheckpointError> {
    let (_, meta) = SafeTensors::read_metadata(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    Ok(meta.metadata().clone().unwrap_or_default())
}

pub(super) fn meta_number(meta: &HashMap<String, String>, key: &str, path: &Path) -> Result<u64, CheckpointError> {
    meta.get(key)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| CheckpointError::corrupt(path, format!("metadata `{key}` is missing")))
}

/// Named tensors of a flat buffer as safetensors bytes (f32, the tensors' shapes).
pub fn tensors_bytes(tensors: &[TensorInfo], params: &[f32], meta: HashMap<String, String>) -> Vec<u8> {
    let data: Vec<(&str, Vec<usize>, Vec<u8>)> =
        tensors.iter().map(|t| (t.name.as_str(), t.shape.clone(), f32_bytes(&params[t.range.clone()]))).collect();
    let views = data
        .iter()
        .map(|(name, shape, bytes)| (*name, TensorView::new(Dtype::F32, shape.clone(), bytes).expect("sizes match")));
    serialize(views, meta)
}

/// `safetensors::serialize` with a reproducible header. The crate writes `__metadata__` from a
/// `HashMap`, so its key order (and the file's bytes) changed from process to process; the
/// header is re-serialised with every object's keys sorted. Same tokens, same length, same
/// data offsets: only the order of keys changes, so same-seed runs give byte-identical files.
pub(super) fn serialize<'a>(
    tensors: impl IntoIterator<Item = (&'a str, TensorView<'a>)>,
    meta: HashMap<String, String>,
) -> Vec<u8> {
    let mut bytes = safetensors::serialize(tensors, Some(meta)).expect("valid tensors");
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8-byte length")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).expect("safetensors writes JSON");
    // serde_json's map is a BTreeMap (no `preserve_order`): serialising sorts every object.
    let sorted = serde_json::to_vec(&header).expect("JSON serialises");
    assert!(sorted.len() <= n, "a re-serialised header never grows");
    bytes[8..8 + sorted.len()].copy_from_slice(&sorted);
    bytes[8 + sorted.len()..8 + n].fill(b' '); // safetensors pads its header with spaces
    bytes
}

/// Parses safetensors bytes into a flat buffer of `len` floats; every tensor must be
/// present with its shape, and every value finite.
///
/// # Errors
/// [`CheckpointError::Corrupt`], naming `path`, if the bytes are not valid safetensors, a tensor is
/// missing or not F32 of its shape, or a value is NaN or infinite.
pub fn tensors_from_bytes(
    bytes: &[u8],
    tensors: &[TensorInfo],
    len: usize,
    path: &Path,
) -> Result<Vec<f32>, CheckpointError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::corrupt(path, e))?;
    let mut params = vec![0.0f32; len];
    for t in tensors {
        params[t.range.clone()].copy_from_slice(&tensor_f32(&st, &t.name, &t.shape, path)?);
    }
    if params.iter().any(|p| !p.is_finite()) {
        return Err(CheckpointError::corrupt(path, "it holds NaN or infinite weights"));
    }
    Ok(params)
}

/// The weights as safetensors bytes: PyTorch's `state_dict` names and shapes, f32.
pub fn model_bytes(model: &Model, epoch: usize) -> Vec<u8> {
    let meta = HashMap::from([
        ("format".to_string(), "pt".to_string()),
        ("model".to_string(), model.config().kind.name().to_string()),
        ("epoch".to_string(), epoch.to_string()),
    ]);
    tensors_bytes(&model.network.layout.tensors, &model.params, meta)
}

/// Parses safetensors weights for `config`; every tensor must be present with its shape.
///
/// # Errors
/// [`CheckpointError::Corrupt`] as [`tensors_from_bytes`]: not valid safetensors, a missing or
/// misshapen tensor, or a weight that is NaN or infinite.
pub fn model_from_bytes(bytes: &[u8], config: &ModelConfig, path: &Path) -> Result<Model, CheckpointError> {
    let network = Network::new(config.clone());
    let params = tensors_from_bytes(bytes, &network.layout.tensors, network.layout.len, path)?;
    Ok(Model { network, params })
}
