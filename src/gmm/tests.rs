use super::*;

/// Three well-separated 2-D Gaussians with weights 0.5, 0.3, 0.2.
fn known() -> Gmm {
    Gmm::new(
        2,
        vec![0.5, 0.3, 0.2],
        vec![0.0, 0.0, 5.0, 5.0, -4.0, 6.0],
        vec![1.0, 0.3, 0.3, 0.5, 0.4, 0.0, 0.0, 0.4, 2.0, -0.8, -0.8, 1.0],
    )
    .unwrap()
}

#[test]
fn log_density_matches_the_formula() {
    // One component: log N(x | μ, Σ) with Σ = [[2, 0.5], [0.5, 1]], |Σ| = 1.75,
    // Σ⁻¹ = [[1, −0.5], [−0.5, 2]] / 1.75; x − μ = (1, −1): quadratic form (1 + 1 + 2)/1.75.
    let g = Gmm::new(2, vec![1.0], vec![1.0, 2.0], vec![2.0, 0.5, 0.5, 1.0]).unwrap();
    let want = -0.5 * (2.0 * (2.0 * std::f64::consts::PI).ln() + 1.75f64.ln() + 4.0 / 1.75);
    assert!((g.log_density(&[2.0, 1.0]) - want).abs() < 1e-12);
    // A mixture is the log of the weighted sum of its components' densities.
    let m = known();
    let x = [1.0, 2.0];
    let parts: f64 = (0..3)
        .map(|k| {
            let one =
                Gmm::new(2, vec![1.0], m.means[k * 2..k * 2 + 2].to_vec(), m.covariances[k * 4..k * 4 + 4].to_vec())
                    .unwrap();
            m.weights[k] * one.log_density(&x).exp()
        })
        .sum();
    assert!((m.log_density(&x) - parts.ln()).abs() < 1e-12);
}

#[test]
fn em_never_lowers_the_likelihood_and_recovers_a_known_mixture() {
    let truth = known();
    let data = truth.sample(20_000, 1.0, &mut Rng::new(1));
    let (fit, report) = Gmm::fit(&data, 2, 3, 500, 1e-9, &mut Rng::new(2)).unwrap();
    let lls = &report.log_likelihoods;
    assert!(lls.len() >= 2);
    for w in lls.windows(2) {
        assert!(w[1] >= w[0] - 1e-12, "the log-likelihood fell: {lls:?}");
    }
    // The fit is at least as likely as the truth on its own data.
    assert!(fit.mean_log_density(&data) >= truth.mean_log_density(&data) - 1e-9);
    for k in 0..3 {
        let mu = &truth.means[k * 2..k * 2 + 2];
        let j = (0..3)
            .min_by(|&a, &b| {
                let d = |c: usize| (fit.means[c * 2] - mu[0]).powi(2) + (fit.means[c * 2 + 1] - mu[1]).powi(2);
                d(a).total_cmp(&d(b))
            })
            .unwrap();
        assert!(
            (fit.weights[j] - truth.weights[k]).abs() < 0.02,
            "weight {k}: {} vs {}",
            fit.weights[j],
            truth.weights[k]
        );
        for (got, want) in fit.means[j * 2..j * 2 + 2].iter().zip(mu) {
            assert!((got - want).abs() < 0.1, "mean {k}: {:?} {:?}", fit.means, fit.weights);
        }
        for i in 0..4 {
            assert!((fit.covariances[j * 4 + i] - truth.covariances[k * 4 + i]).abs() < 0.12, "covariance {k}");
        }
    }
}

#[test]
fn em_is_monotone_on_data_no_mixture_fits() {
    // Uniform noise in 5-D, fitted with 4 components.
    let mut rng = Rng::new(3);
    let data: Vec<f64> = (0..5 * 2000).map(|_| rng.uniform()).collect();
    let (_, report) = Gmm::fit(&data, 5, 4, 60, 0.0, &mut Rng::new(4)).unwrap();
    for w in report.log_likelihoods.windows(2) {
        assert!(w[1] >= w[0] - 1e-12, "{:?}", report.log_likelihoods);
    }
    assert_eq!(report.log_likelihoods.len(), 60);
}

#[test]
fn sampling_follows_weights_and_temperature() {
    let g = known();
    let n = 20_000;
    let x = g.sample(n, 1.0, &mut Rng::new(5));
    let near_first = x.chunks_exact(2).filter(|p| p[0].hypot(p[1]) < 2.5).count() as f64 / n as f64;
    assert!((near_first - 0.5).abs() < 0.02, "{near_first}");
    // T = 0 puts every point on a component mean.
    let cold = g.sample(100, 0.0, &mut Rng::new(6));
    for p in cold.chunks_exact(2) {
        assert!((0..3).any(|k| p[0] == g.means[k * 2] && p[1] == g.means[k * 2 + 1]));
    }
}

#[test]
fn bad_mixtures_are_refused() {
    let cov = vec![1.0, 0.0, 0.0, 1.0];
    assert!(matches!(Gmm::new(2, vec![0.5], vec![0.0; 2], cov.clone()), Err(GmmError::Weights(_))));
    assert!(matches!(Gmm::new(2, vec![1.0], vec![0.0; 3], cov.clone()), Err(GmmError::Shape(_))));
    assert!(matches!(Gmm::new(2, vec![1.0], vec![f64::NAN, 0.0], cov), Err(GmmError::NotFinite)));
    let indefinite = vec![1.0, 2.0, 2.0, 1.0];
    assert_eq!(Gmm::new(2, vec![1.0], vec![0.0; 2], indefinite), Err(GmmError::Covariance(0)));
    let asymmetric = vec![1.0, 0.1, 0.0, 1.0];
    assert_eq!(Gmm::new(2, vec![1.0], vec![0.0; 2], asymmetric), Err(GmmError::Covariance(0)));
    assert!(matches!(Gmm::fit(&[0.0; 4], 2, 3, 10, 0.0, &mut Rng::new(1)), Err(GmmError::Shape(_))));
    // A JSON round trip rebuilds the factors.
    let g = known();
    let back: Gmm = serde_json::from_str(&serde_json::to_string(&g).unwrap()).unwrap();
    assert_eq!(back.checked().unwrap(), g);
}

/// An empty component is parked at the data's mean with the data's variances, whatever the
/// data's scale (points 1e4 out).
#[test]
fn m_step_parks_empty_components_at_the_datas_scale() {
    let mut data = Vec::new();
    let mut resp = Vec::new();
    for i in 0..20 {
        let t = (i as f64 - 10.0) * 1e4;
        data.extend([t, 0.5 * t + 1e3 * (i % 3) as f64]);
        resp.extend([1.0, 0.0]);
    }
    let g = m_step(&data, 2, 2, &resp).unwrap();
    for j in 0..2 {
        let mean = data.iter().skip(j).step_by(2).sum::<f64>() / 20.0;
        let var = data.iter().skip(j).step_by(2).map(|v| (v - mean).powi(2)).sum::<f64>() / 20.0;
        assert!((g.means[2 + j] - mean).abs() < 1e-6 * (1.0 + mean.abs()), "parked at the mean");
        assert!((g.covariances[4 + j * 3] - var).abs() < 1e-9 * var, "the data's variance, not 1");
    }
}

/// A component whose covariance does not factor falls back to its own diagonal; the other
/// keeps its correlation.
#[test]
fn only_the_broken_component_is_made_diagonal() {
    let mut g = known();
    let (good, bad) = (g.covariances[..4].to_vec(), [1.0, 2.0, 2.0, 1.0]);
    g.covariances[4..8].copy_from_slice(&bad);
    g.chol = vec![0.0; g.covariances.len()];
    g.log_dets = vec![0.0; 3];
    for c in 0..3 {
        factor_or_diagonal(&mut g, c).unwrap();
    }
    assert_eq!(g.covariances[..4], good[..]);
    assert_eq!(g.covariances[4..8], [1.0, 0.0, 0.0, 1.0]);
    assert!(g.log_density(&[0.3, -0.2]).is_finite());
}

/// Values whose squares overflow are refused with an error, not a panic.
#[test]
fn overflowing_data_is_an_error() {
    let data: Vec<f64> = (0..40).map(|i| if i % 2 == 0 { 1e200 } else { -1e200 } * (1.0 + i as f64)).collect();
    assert!(Gmm::fit(&data, 2, 2, 10, 1e-6, &mut Rng::new(1)).is_err());
}
