//! Looking at the latent space: latent paths, traversals, manifolds and principal planes.
//! Every function returns plain buffers (latent codes, images `[n, pixels]` in [0, 1]) that
//! [`crate::images::grid`] turns into pictures.
//!
//! ```
//! use vae::core::Pool;
//! use vae::explore::{lerp_path, slerp_path};
//! use vae::model::{Model, ModelConfig, ModelKind};
//!
//! let model = Model::init(ModelConfig::tutorial(ModelKind::Vae), 1);
//! let pool = Pool::new(1);
//! let (a, b) = (vec![1.0; 20], vec![-1.0; 20]);
//! let path = lerp_path(&a, &b, 5);                 // 5 codes from a to b
//! assert_eq!(path.len(), 5 * 20);
//! assert_eq!(&path[..20], &a[..]);
//! let images = model.decode(&pool, &path, None)?;  // [5, 784] Bernoulli means
//! assert_eq!(images.len(), 5 * 784);
//! let grid = vae::images::grid(&images, model.config().shape(), 5, 2);
//! assert_eq!((grid.width, grid.height), (152, 32));
//! # let s = slerp_path(&a, &b, 3); assert_eq!(&s[40..], &b[..]);
//! # Ok::<(), vae::model::InputError>(())
//! ```

/// `steps` codes evenly spaced on the segment from `a` to `b` (both included), `[steps, d]`.
pub fn lerp_path(a: &[f32], b: &[f32], steps: usize) -> Vec<f32> {
    let steps = steps.max(2);
    (0..steps)
        .flat_map(|i| {
            let t = i as f32 / (steps - 1) as f32;
            a.iter().zip(b).map(move |(x, y)| x + t * (y - x))
        })
        .collect()
}

/// `steps` codes on the great-circle arc from `a` to `b` (spherical interpolation, Shoemake
/// 1985; White 2016 for generative models), with the norm interpolated linearly, so the
/// endpoints are exactly `a` and `b`. Falls back to [`lerp_path`] for (anti)parallel codes.
pub fn slerp_path(a: &[f32], b: &[f32], steps: usize) -> Vec<f32> {
    let steps = steps.max(2);
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let (na, nb) = (norm(a), norm(b));
    if na == 0.0 || nb == 0.0 {
        return lerp_path(a, b, steps);
    }
    let cos = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum::<f64>() / (na * nb);
    let omega = cos.clamp(-1.0, 1.0).acos();
    if omega.sin().abs() < 1e-6 {
        return lerp_path(a, b, steps);
    }
    let mut out = Vec::with_capacity(steps * a.len());
    for i in 0..steps {
        let t = i as f64 / (steps - 1) as f64;
        if i == 0 || i == steps - 1 {
            out.extend_from_slice(if i == 0 { a } else { b });
            continue;
        }
        let (wa, wb) = (((1.0 - t) * omega).sin() / omega.sin(), (t * omega).sin() / omega.sin());
        // Unit directions interpolated on the sphere, radius interpolated linearly.
        let radius = (1.0 - t) * na + t * nb;
        let dir: Vec<f64> = a.iter().zip(b).map(|(x, y)| wa * *x as f64 / na + wb * *y as f64 / nb).collect();
        let dn = dir.iter().map(|v| v * v).sum::<f64>().sqrt();
        out.extend(dir.iter().map(|v| (v / dn * radius) as f32));
    }
    out
}

/// One row per dimension in `dims`: `base` with that dimension swept over `steps` values
/// evenly spaced in [−range, range], the others held. Returns codes `[dims·steps, d]`.
pub fn traversal(base: &[f32], dims: &[usize], range: f32, steps: usize) -> Vec<f32> {
    let steps = steps.max(2);
    let mut out = Vec::with_capacity(dims.len() * steps * base.len());
    for &d in dims {
        for i in 0..steps {
            let v = -range + 2.0 * range * i as f32 / (steps - 1) as f32;
            let mut z = base.to_vec();
            z[d] = v;
            out.extend_from_slice(&z);
        }
    }
    out
}

/// Φ⁻¹(p), the standard normal quantile (Acklam's rational approximation, relative error
/// < 1.15e-9; coefficients
/// as published).
#[allow(clippy::excessive_precision)]
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969683028665376e1,
        2.209460984245205e2,
        -2.759285104469687e2,
        1.383577518672690e2,
        -3.066479806614716e1,
        2.506628277459239,
    ];
    const B: [f64; 5] =
        [-5.447609879822406e1, 1.615858368580409e2, -1.556989798598866e2, 6.680131188771972e1, -1.328068155288572e1];
    const C: [f64; 6] = [
        -7.784894002430293e-3,
        -3.223964580411365e-1,
        -2.400758277161838,
        -2.549732539343734,
        4.374664141464968,
        2.938163982698783,
    ];
    const D: [f64; 4] = [7.784695709041462e-3, 3.224671290700398e-1, 2.445134137142996, 3.754408661907416];
    let p = p.clamp(1e-300, 1.0 - 1e-16);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < 0.02425 {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - 0.02425 {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The `n` quantiles Φ⁻¹((i + ½)/n) of N(0, 1), i = 0..n: a grid that covers the prior
/// evenly in probability (Kingma & Welling 2014, fig. 4).
pub fn normal_grid(n: usize) -> Vec<f32> {
    (0..n).map(|i| normal_quantile((i as f64 + 0.5) / n as f64) as f32).collect()
}

/// A plane in latent space: `origin + a·axes[0] + b·axes[1]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Plane {
    pub origin: Vec<f32>,
    /// Two orthonormal directions.
    pub axes: [Vec<f32>; 2],
    /// Standard deviation of the data along each axis (1 for the prior's own axes).
    pub scales: [f32; 2],
}

/// Principal directions of a point cloud: origin (the mean), orthonormal axes, and the
/// standard deviation of the points along each.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Basis {
    pub origin: Vec<f32>,
    pub axes: Vec<Vec<f32>>,
    pub scales: Vec<f32>,
}

/// The first `k` principal directions of the points `[n, d]` (power iteration with
/// deflation on the covariance, in f64).
pub fn principal_axes(points: &[f32], d: usize, k: usize) -> Basis {
    let n = points.len() / d;
    let mean: Vec<f64> =
        (0..d).map(|j| points.iter().skip(j).step_by(d).map(|&v| v as f64).sum::<f64>() / n.max(1) as f64).collect();
    let mut cov = vec![0.0f64; d * d];
    let mut c = vec![0.0f64; d];
    for p in points.chunks_exact(d) {
        c.iter_mut().zip(p).zip(&mean).for_each(|((c, &v), m)| *c = v as f64 - m);
        for i in 0..d {
            for j in 0..d {
                cov[i * d + j] += c[i] * c[j];
            }
        }
    }
    cov.iter_mut().for_each(|c| *c /= (n.max(2) - 1) as f64);
    let mut axes: Vec<Vec<f64>> = Vec::new();
    let mut scales = Vec::new();
    for a in 0..k.min(d) {
        let mut v: Vec<f64> = (0..d).map(|j| if j == a { 1.0 } else { 0.1 / (j + 1) as f64 }).collect();
        let mut lambda = 0.0;
        for _ in 0..500 {
            let mut w: Vec<f64> = (0..d).map(|i| (0..d).map(|j| cov[i * d + j] * v[j]).sum()).collect();
            for prev in &axes {
                let dot: f64 = w.iter().zip(prev).map(|(a, b)| a * b).sum();
                w.iter_mut().zip(prev).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = w.iter().map(|x| x * x).sum::<f64>().sqrt();
            if norm == 0.0 {
                break;
            }
            lambda = norm;
            v = w.iter().map(|x| x / norm).collect();
        }
        // Re-orthogonalise against earlier axes (deflation leaves rounding).
        for prev in &axes {
            let dot: f64 = v.iter().zip(prev).map(|(a, b)| a * b).sum();
            v.iter_mut().zip(prev).for_each(|(a, b)| *a -= dot * b);
        }
        let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        v.iter_mut().for_each(|x| *x /= norm);
        scales.push(lambda.sqrt() as f32);
        axes.push(v);
    }
    Basis {
        origin: mean.iter().map(|&m| m as f32).collect(),
        axes: axes.iter().map(|a| a.iter().map(|&x| x as f32).collect()).collect(),
        scales,
    }
}

/// The plane of the first two principal directions of the points `[n, d]`.
pub fn principal_plane(points: &[f32], d: usize) -> Plane {
    let b = principal_axes(points, d, 2);
    let [a0, a1]: [Vec<f32>; 2] = b.axes.try_into().expect("two axes");
    Plane { origin: b.origin, axes: [a0, a1], scales: [b.scales[0], b.scales[1]] }
}

/// An `n × n` grid of codes over `plane`: row r, column c at
/// `origin + q_c·s₀·axis₀ − q_r·s₁·axis₁` with q the normal quantiles (so up is positive).
pub fn plane_grid(plane: &Plane, n: usize) -> Vec<f32> {
    let q = normal_grid(n);
    let d = plane.origin.len();
    let mut out = Vec::with_capacity(n * n * d);
    for r in 0..n {
        for c in 0..n {
            let (a, b) = (q[c] * plane.scales[0], -q[r] * plane.scales[1]);
            out.extend((0..d).map(|j| plane.origin[j] + a * plane.axes[0][j] + b * plane.axes[1][j]));
        }
    }
    out
}

/// The prior's own plane for a 2-D latent: origin 0, unit axes, unit scales.
pub fn prior_plane() -> Plane {
    prior_plane_of(2)
}

/// The plane of the first two of `dims` ≥ 2 dimensions through the origin, the others at 0.
pub fn prior_plane_of(dims: usize) -> Plane {
    let unit = |i: usize| (0..dims).map(|j| f32::from(i == j)).collect();
    Plane { origin: vec![0.0; dims], axes: [unit(0), unit(1)], scales: [1.0, 1.0] }
}

/// Projects points `[n, d]` onto a plane's axes: `[n, 2]` coordinates.
pub fn project(points: &[f32], plane: &Plane) -> Vec<[f32; 2]> {
    let d = plane.origin.len();
    points
        .chunks_exact(d)
        .map(|p| {
            let coord =
                |axis: &[f32]| p.iter().zip(&plane.origin).zip(axis).map(|((x, o), a)| (x - o) * a).sum::<f32>();
            [coord(&plane.axes[0]), coord(&plane.axes[1])]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linear_and_spherical_paths_share_their_endpoints() {
        let (a, b) = ([3.0f32, 0.0, 1.0], [0.0f32, -2.0, 0.5]);
        for path in [lerp_path(&a, &b, 7), slerp_path(&a, &b, 7)] {
            assert_eq!(path.len(), 21);
            assert_eq!(&path[..3], &a);
            assert_eq!(&path[18..], &b);
        }
        // Slerp between equal-norm codes keeps the norm; lerp cuts the corner.
        let (u, v) = ([1.0f32, 0.0], [0.0f32, 1.0]);
        let s = slerp_path(&u, &v, 3);
        assert!(((s[2] * s[2] + s[3] * s[3]).sqrt() - 1.0).abs() < 1e-6);
        let l = lerp_path(&u, &v, 3);
        assert!(((l[2] * l[2] + l[3] * l[3]).sqrt() - 0.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn traversal_rows_differ_only_in_their_dimension() {
        let base = [0.5f32, -1.0, 2.0];
        let t = traversal(&base, &[0, 2], 3.0, 4);
        assert_eq!(t.len(), 2 * 4 * 3);
        for (i, z) in t.chunks_exact(3).enumerate() {
            let d = if i < 4 { 0 } else { 2 };
            for j in 0..3 {
                if j != d {
                    assert_eq!(z[j], base[j]);
                }
            }
            assert_eq!(z[d], [-3.0, -1.0, 1.0, 3.0][i % 4]);
        }
    }

    #[test]
    fn normal_quantiles_are_accurate() {
        assert_eq!(normal_quantile(0.5), 0.0);
        assert!((normal_quantile(0.975) - 1.959963984540054).abs() < 1e-8);
        assert!((normal_quantile(0.001) + 3.090232306167814).abs() < 1e-8);
        let g = normal_grid(4);
        assert!((g[0] + g[3]).abs() < 1e-6 && g[0] < g[1]);
    }

    #[test]
    fn principal_plane_finds_the_dominant_directions() {
        // Points spread 3 along (1,1,0)/√2, 1 along z, 0.1 along (1,−1,0)/√2.
        let mut rng = crate::core::Rng::new(2);
        let mut pts = Vec::new();
        for _ in 0..4000 {
            let mut e = [0.0f32; 3];
            rng.fill_normal(&mut e);
            let (a, b, c) = (3.0 * e[0], 1.0 * e[1], 0.1 * e[2]);
            let s = std::f32::consts::FRAC_1_SQRT_2;
            pts.extend_from_slice(&[5.0 + s * (a + c), s * (a - c), b]);
        }
        let p = principal_plane(&pts, 3);
        assert!((p.origin[0] - 5.0).abs() < 0.2);
        assert!(
            (p.axes[0][0].abs() - std::f32::consts::FRAC_1_SQRT_2).abs() < 0.02 && p.axes[0][2].abs() < 0.05,
            "{:?}",
            p.axes
        );
        assert!(p.axes[1][2].abs() > 0.99, "{:?}", p.axes);
        assert!((p.scales[0] - 3.0).abs() < 0.15 && (p.scales[1] - 1.0).abs() < 0.05, "{:?}", p.scales);
        let proj = project(&pts[..3], &p);
        assert_eq!(proj.len(), 1);
    }
}
