//! Every layer against a naive f64 loop written from PyTorch's definitions: the forward
//! values, and both gradients against central finite differences of that loop.

use super::*;
use crate::core::Rng;
use crate::core::activations::Activation;

fn random(n: usize, seed: u64) -> Vec<f32> {
    let mut v = vec![0.0f32; n];
    Rng::new(seed).fill_normal(&mut v);
    v
}

/// `torch.nn.functional.conv2d` with no bias, batch innermost: x `[C_in, H, W, B]`,
/// w `[C_out, C_in, k, k]`, result `[C_out, Ho, Wo, B]`.
fn naive_conv2d(g: &ConvGeometry, cout: usize, w: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    let (ho, wo, k) = (g.out_height(), g.out_width(), g.kernel());
    let mut y = vec![0.0; cout * ho * wo * batch];
    for co in 0..cout {
        for oy in 0..ho {
            for ox in 0..wo {
                for b in 0..batch {
                    let mut acc = 0.0;
                    for ci in 0..g.channels() {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * g.stride() + ky) as i64 - g.padding() as i64;
                                let ix = (ox * g.stride() + kx) as i64 - g.padding() as i64;
                                if (0..g.height() as i64).contains(&iy) && (0..g.width() as i64).contains(&ix) {
                                    let xv = x[((ci * g.height() + iy as usize) * g.width() + ix as usize) * batch + b];
                                    acc += w[((co * g.channels() + ci) * k + ky) * k + kx] * xv;
                                }
                            }
                        }
                    }
                    y[((co * ho + oy) * wo + ox) * batch + b] = acc;
                }
            }
        }
    }
    y
}

/// `torch.nn.functional.conv_transpose2d` with no bias: every input pixel scatters
/// `x[ci, oy, ox] · w[ci, co, ky, kx]` to output pixel `(oy·s − p + ky, ox·s − p + kx)`.
/// x `[C_in, Ho, Wo, B]`, w `[C_in, C_out, k, k]`; `g` is the output side.
fn naive_conv_transpose2d(g: &ConvGeometry, cin: usize, w: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    let (hi, wi, k, cout) = (g.out_height(), g.out_width(), g.kernel(), g.channels());
    let mut y = vec![0.0; g.in_size() * batch];
    for ci in 0..cin {
        for oy in 0..hi {
            for ox in 0..wi {
                for co in 0..cout {
                    for ky in 0..k {
                        for kx in 0..k {
                            let ty = (oy * g.stride() + ky) as i64 - g.padding() as i64;
                            let tx = (ox * g.stride() + kx) as i64 - g.padding() as i64;
                            if !((0..g.height() as i64).contains(&ty) && (0..g.width() as i64).contains(&tx)) {
                                continue;
                            }
                            for b in 0..batch {
                                let xv = x[((ci * hi + oy) * wi + ox) * batch + b];
                                y[((co * g.height() + ty as usize) * g.width() + tx as usize) * batch + b] +=
                                    xv * w[((ci * cout + co) * k + ky) * k + kx];
                            }
                        }
                    }
                }
            }
        }
    }
    y
}

fn naive_linear(inputs: usize, outputs: usize, w: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    let mut y = vec![0.0; outputs * batch];
    for o in 0..outputs {
        for b in 0..batch {
            y[o * batch + b] = (0..inputs).map(|i| w[o * inputs + i] * x[i * batch + b]).sum();
        }
    }
    y
}

fn naive(layer: &Layer, w: &[f64], x: &[f64], batch: usize) -> Vec<f64> {
    match &layer.kind {
        LayerKind::Linear { inputs, outputs } => naive_linear(*inputs, *outputs, w, x, batch),
        LayerKind::Conv2d { geometry, out_channels } => naive_conv2d(geometry, *out_channels, w, x, batch),
        LayerKind::ConvTranspose2d { geometry, in_channels } => {
            naive_conv_transpose2d(geometry, *in_channels, w, x, batch)
        }
    }
}

fn layers() -> Vec<Layer> {
    let mut b = LayoutBuilder::default();
    vec![
        b.linear("fc", 7, 5),
        // Distinct channel counts and a non-square map, so a swapped index shows up.
        b.layer("conv", LayerKind::Conv2d { geometry: halving(3, 6, 4), out_channels: 2 }),
        b.layer("convt", LayerKind::ConvTranspose2d { geometry: halving(2, 6, 4), in_channels: 3 }),
        b.layer("conv3", LayerKind::Conv2d { geometry: ConvGeometry::new(2, 5, 5, 3, 1, 1).unwrap(), out_channels: 3 }),
    ]
}

#[test]
fn shapes_and_fan_in_follow_pytorch() {
    let l = layers();
    assert_eq!((l[0].weight_shape(), l[0].fan_in(), l[0].outputs()), (vec![5, 7], 7, 5));
    // Conv2d(3 → 2, 4, 2, 1) on 6×4: weight [2, 3, 4, 4], fan-in 3·16, output 2×3×2.
    assert_eq!((l[1].weight_shape(), l[1].fan_in(), l[1].inputs(), l[1].outputs()), (vec![2, 3, 4, 4], 48, 72, 12));
    // ConvTranspose2d(3 → 2) back to 6×4: weight [3, 2, 4, 4], fan-in from dim 1: 2·16.
    assert_eq!((l[2].weight_shape(), l[2].fan_in(), l[2].inputs(), l[2].outputs()), (vec![3, 2, 4, 4], 32, 18, 48));
    assert_eq!((l[2].bias_len(), l[2].spatial()), (2, 24));
}

#[test]
fn forward_matches_the_naive_loop() {
    for layer in layers() {
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let batch = 3;
            let w = random(layer.w.len(), 1);
            let x = random(layer.inputs() * batch, 2);
            let mut params = vec![0.0f32; layer.b.end];
            params[layer.w.clone()].copy_from_slice(&w);
            let mut y = vec![f32::NAN; layer.outputs() * batch];
            let mut col = vec![0.0; layer.scratch_len(pool.threads())];
            layer.forward(&pool, &params, &x, &mut y, &mut col, batch, None);
            let f64s = |v: &[f32]| v.iter().map(|&a| a as f64).collect::<Vec<_>>();
            let want = naive(&layer, &f64s(&w), &f64s(&x), batch);
            for (i, (a, b)) in y.iter().zip(&want).enumerate() {
                assert!((*a as f64 - b).abs() < 1e-5 * (1.0 + b.abs()), "{} [{i}]: {a} vs {b}", layer.name);
            }
        }
    }
}

#[test]
fn gradients_match_finite_differences_of_the_naive_loop() {
    // L = Σ r ⊙ layer(x): dy = r, and the finite differences of L in every weight and input.
    for layer in layers() {
        let pool = Pool::new(2);
        let batch = 2;
        let w: Vec<f64> = random(layer.w.len(), 3).iter().map(|&v| v as f64).collect();
        let x: Vec<f64> = random(layer.inputs() * batch, 4).iter().map(|&v| v as f64).collect();
        let r: Vec<f64> = random(layer.outputs() * batch, 5).iter().map(|&v| v as f64).collect();
        let loss = |w: &[f64], x: &[f64]| naive(&layer, w, x, batch).iter().zip(&r).map(|(a, b)| a * b).sum::<f64>();
        let mut params = vec![0.0f32; layer.b.end];
        params[layer.w.clone()].iter_mut().zip(&w).for_each(|(p, v)| *p = *v as f32);
        let xf: Vec<f32> = x.iter().map(|&v| v as f32).collect();
        let rf: Vec<f32> = r.iter().map(|&v| v as f32).collect();
        let mut grads = vec![f32::NAN; layer.b.end];
        let mut dx = vec![f32::NAN; x.len()];
        let mut col = vec![0.0; layer.scratch_len(pool.threads())];
        let rows = layer.inputs();
        layer.backward(&pool, &params, &mut grads, &xf, &rf, Some((&mut dx, rows)), None, &mut col, batch);
        let h = 1e-5;
        let close = |got: f32, fd: f64, what: String| {
            assert!((got as f64 - fd).abs() < 1e-4 * (1.0 + fd.abs()), "{}: {what}: {got} vs {fd}", layer.name);
        };
        for i in 0..w.len() {
            let (mut a, mut b) = (w.clone(), w.clone());
            a[i] += h;
            b[i] -= h;
            close(grads[layer.w.start + i], (loss(&a, &x) - loss(&b, &x)) / (2.0 * h), format!("weight {i}"));
        }
        for i in 0..x.len() {
            let (mut a, mut b) = (x.clone(), x.clone());
            a[i] += h;
            b[i] -= h;
            close(dx[i], (loss(&w, &a) - loss(&w, &b)) / (2.0 * h), format!("input {i}"));
        }
    }
}

#[test]
fn a_linear_input_gradient_can_skip_trailing_inputs() {
    // A label appended to the input needs no gradient: only the first rows are written.
    let mut b = LayoutBuilder::default();
    let layer = b.linear("fc", 4, 3);
    let pool = Pool::new(1);
    let params = random(b.len, 6);
    let (x, dy) = (random(4 * 2, 7), random(3 * 2, 8));
    let (mut grads, mut full, mut part) = (vec![0.0; b.len], vec![0.0; 8], vec![f32::NAN; 8]);
    layer.backward(&pool, &params, &mut grads, &x, &dy, Some((&mut full, 4)), None, &mut [], 2);
    layer.backward(&pool, &params, &mut grads, &x, &dy, Some((&mut part[..6], 3)), None, &mut [], 2);
    assert_eq!(&part[..6], &full[..6]);
    assert!(part[6].is_nan());
}

#[test]
fn the_activated_forward_is_relu_of_product_plus_bias_for_every_layer() {
    // Convolutions fuse bias + ReLU into their product's store; linear layers add a pass.
    // Either way: act(W ⊛ x + b), with the bias per output row (linear) or channel (conv).
    for layer in layers() {
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let batch = 5;
            let params = random(layer.b.end, 11);
            let x = random(layer.inputs() * batch, 12);
            let mut col = vec![0.0; layer.scratch_len(pool.threads())];
            let (mut plain, mut fused) = (vec![0.0; layer.outputs() * batch], vec![f32::NAN; layer.outputs() * batch]);
            layer.forward(&pool, &params, &x, &mut plain, &mut col, batch, None);
            layer.forward(&pool, &params, &x, &mut fused, &mut col, batch, Some(Activation::Relu));
            let bias = &params[layer.b.clone()];
            let per = layer.spatial() * batch;
            for (i, (&p, &f)) in plain.iter().zip(&fused).enumerate() {
                assert_eq!(f, (p + bias[i / per]).max(0.0), "{} [{i}], {threads} threads", layer.name);
            }
        }
    }
}

#[test]
fn a_fused_relu_backward_equals_the_separate_pass() {
    // The layer below is a ReLU whose output is x: its backward (dx · [x > 0], and the row
    // sums per channel as its bias gradient) folded into the product equals the plain
    // product followed by the activation backward.
    for layer in layers().into_iter().filter(|l| !matches!(l.kind, LayerKind::Linear { .. })) {
        let (channels, spatial) = match &layer.kind {
            LayerKind::Conv2d { geometry, .. } => (geometry.channels(), geometry.height() * geometry.width()),
            LayerKind::ConvTranspose2d { geometry, in_channels } => (*in_channels, geometry.out_plane()),
            LayerKind::Linear { .. } => unreachable!(),
        };
        for threads in [1, 2] {
            let pool = Pool::new(threads);
            let batch = 6;
            let params = random(layer.b.end, 21);
            // x as a ReLU's output: about half of it exactly 0.
            let x: Vec<f32> = random(layer.inputs() * batch, 22).iter().map(|v| v.max(0.0)).collect();
            let dy = random(layer.outputs() * batch, 23);
            let mut col = vec![0.0; layer.scratch_len(pool.threads())];
            let (mut grads, mut plain, mut fused) =
                (vec![0.0; layer.b.end], vec![0.0; x.len()], vec![f32::NAN; x.len()]);
            let mut db_plain = vec![0.0; channels];
            assert!(!layer.backward(
                &pool,
                &params,
                &mut grads,
                &x,
                &dy,
                Some((&mut plain, x.len())),
                None,
                &mut col,
                batch
            ));
            crate::core::activations::activation_backward(
                &pool,
                Activation::Relu,
                &mut plain,
                &x,
                &mut db_plain,
                spatial * batch,
            );
            let mut db_fused = vec![f32::NAN; channels];
            let done = layer.backward(
                &pool,
                &params,
                &mut grads,
                &x,
                &dy,
                Some((&mut fused, x.len())),
                Some((&x, &mut db_fused)),
                &mut col,
                batch,
            );
            assert!(done, "{}: convolutions fuse", layer.name);
            for (i, (a, b)) in fused.iter().zip(&plain).enumerate() {
                assert!((a - b).abs() <= 1e-5 * (1.0 + b.abs()), "{} dx[{i}]: {a} vs {b}", layer.name);
            }
            for (i, (a, b)) in db_fused.iter().zip(&db_plain).enumerate() {
                assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{} db[{i}]: {a} vs {b}", layer.name);
            }
        }
    }
}
