//! Latent-space operations on a trained model.

use vae::core::{AdamConfig, AdamState, Pool, Rng};
use vae::data::{Dataset, Source};
use vae::model::{InputError, Model, ModelConfig, ModelKind};
use vae::train::{TrainConfig, Trainer};

#[test]
fn decoding_the_encoding_mean_reconstructs_better_than_a_random_z() {
    let data = Dataset::load(&Source::Mnist).unwrap();
    let train = TrainConfig {
        epochs: 1,
        batch_size: 64,
        adam: AdamConfig::default(),
        beta: 1.0,
        seed: 4,
        threads: 2,
        dataset: Source::Mnist,
        train_limit: Some(6400),
        test_limit: Some(100),
        binarize: Default::default(),
        objective: Default::default(),
        lr_schedule: Default::default(),
        init: Default::default(),
        output_bias: Default::default(),
        kl_warmup: 0,
        augment: Default::default(),
        precision: Default::default(),
        world_size: 1,
        micro_batches: 1,
        gamma: None,
    };
    let model = Model::init(ModelConfig::tutorial(ModelKind::Vae), 4);
    let adam = AdamState::new(model.params.len());
    let mut t = Trainer::new(train, model, adam, 0, data);
    t.train_epoch(&mut |_, _, _| {}).unwrap();
    let pool = Pool::new(2);
    let x: Vec<f32> = t.data.test.images[..100 * 784].iter().map(|&v| v as f32 / 255.0).collect();
    let mu = t.model.encode(&pool, &x, None).unwrap().mu;
    let mut z = vec![0.0f32; mu.len()];
    Rng::new(1).fill_normal(&mut z);
    let sq_err = |img: &[f32]| img.iter().zip(&x).map(|(a, b)| (a - b).powi(2)).sum::<f32>() / 100.0;
    let (from_mu, from_random) =
        (sq_err(&t.model.decode(&pool, &mu, None).unwrap()), sq_err(&t.model.decode(&pool, &z, None).unwrap()));
    // After 100 steps: ~40 squared-error units per image from μ against ~58 from a random code.
    assert!(from_mu < 0.8 * from_random, "μ: {from_mu}, random z: {from_random}");
}

#[test]
fn temperature_scales_the_prior_draw() {
    // An untrained cvae is enough: the identities hold for any weights.
    let model = Model::init(ModelConfig::tutorial(ModelKind::Cvae), 9);
    let pool = Pool::new(2);
    let labels = [3u8, 3, 7];
    let latent = model.config().latent_dim;
    // T = 1 is exactly `sample`, draw for draw.
    let one = model.sample_at(&pool, 3, Some(&labels), 1.0, &mut Rng::new(5)).unwrap();
    assert_eq!(one, model.sample(&pool, 3, Some(&labels), &mut Rng::new(5)).unwrap());
    // T = 0.5 decodes the same draw scaled by one half.
    let mut z = vec![0.0f32; 3 * latent];
    Rng::new(5).fill_normal(&mut z);
    z.iter_mut().for_each(|v| *v *= 0.5);
    let half = model.sample_at(&pool, 3, Some(&labels), 0.5, &mut Rng::new(5)).unwrap();
    assert_eq!(half, model.decode(&pool, &z, Some(&labels)).unwrap());
    assert_ne!(half, one);
    // T = 0 decodes z = 0: one image per label, whatever the draw.
    let zero = model.sample_at(&pool, 3, Some(&labels), 0.0, &mut Rng::new(5)).unwrap();
    let p = model.config().pixels();
    assert_eq!(zero[..p], zero[p..2 * p]);
    assert_ne!(zero[..p], zero[2 * p..]);
    assert_eq!(zero, model.decode(&pool, &vec![0.0; 3 * latent], Some(&labels)).unwrap());
}

#[test]
fn inputs_that_do_not_fit_the_model_are_errors_not_zeros() {
    let pool = Pool::new(1);
    let (cvae, vae) =
        (Model::init(ModelConfig::tutorial(ModelKind::Cvae), 1), Model::init(ModelConfig::tutorial(ModelKind::Vae), 1));
    let (p, l) = (784, 20);
    let (x, z) = (vec![0.5f32; 2 * p], vec![0.0f32; 2 * l]);
    let rng = &mut Rng::new(1);
    // A label the model does not know once gave an all-zero condition, silently.
    assert_eq!(cvae.encode(&pool, &x, Some(&[1, 10])), Err(InputError::LabelRange { label: 10, classes: 10 }));
    assert_eq!(cvae.decode(&pool, &z, Some(&[255, 0])), Err(InputError::LabelRange { label: 255, classes: 10 }));
    assert_eq!(cvae.sample(&pool, 2, Some(&[3, 12]), rng), Err(InputError::LabelRange { label: 12, classes: 10 }));
    // Counts.
    assert_eq!(cvae.encode(&pool, &x, Some(&[1])), Err(InputError::LabelCount { labels: 1, n: 2 }));
    assert_eq!(cvae.decode(&pool, &z, Some(&[1, 2, 3])), Err(InputError::LabelCount { labels: 3, n: 2 }));
    assert_eq!(cvae.sample(&pool, 2, Some(&[1]), rng), Err(InputError::LabelCount { labels: 1, n: 2 }));
    assert_eq!(
        cvae.decode_conditioned(&pool, &z, Some(&[0.0; 19])),
        Err(InputError::Condition { len: 19, n: 2, classes: 10 })
    );
    // Missing and unexpected labels.
    assert_eq!(cvae.encode(&pool, &x, None), Err(InputError::MissingLabels { classes: 10 }));
    assert_eq!(cvae.decode_conditioned(&pool, &z, None), Err(InputError::MissingLabels { classes: 10 }));
    assert_eq!(vae.encode(&pool, &x, Some(&[1, 2])), Err(InputError::UnexpectedLabels));
    assert_eq!(vae.decode(&pool, &z, Some(&[1, 2])), Err(InputError::UnexpectedLabels));
    assert_eq!(vae.decode_conditioned(&pool, &z, Some(&[0.0; 20])), Err(InputError::UnexpectedLabels));
    // Shapes and the temperature.
    assert!(matches!(vae.encode(&pool, &x[..p + 1], None), Err(InputError::Images { len: 785, pixels: 784, .. })));
    assert_eq!(vae.decode(&pool, &z[..l + 3], None), Err(InputError::Latent { len: 23, latent: 20 }));
    assert_eq!(vae.sample_at(&pool, 2, None, -1.0, rng), Err(InputError::Temperature(-1.0)));
    assert!(vae.sample_at(&pool, 2, None, f32::NAN, rng).is_err());
    // The messages are sentences a user can act on.
    let msg = InputError::LabelRange { label: 10, classes: 10 }.to_string();
    assert_eq!(msg, "label 10 is out of range: the model knows 10 classes, 0 to 9");
    // And what fits still works.
    assert_eq!(cvae.encode(&pool, &x, Some(&[1, 9])).unwrap().mu.len(), 2 * l);
    assert_eq!(vae.sample(&pool, 2, None, rng).unwrap().len(), 2 * p);
}
