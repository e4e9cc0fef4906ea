//! Loss values on hand-computed cases, reproducibility, and that training learns.

use vae::core::{AdamConfig, AdamState, Pool};
use vae::data::{Dataset, Source};
use vae::model::{Model, ModelConfig, ModelKind, Workspace};
use vae::train::{Objective, TrainConfig, Trainer, fill_inputs};

fn mnist() -> Dataset {
    Dataset::load(&Source::Mnist).unwrap()
}

/// Per-example (BCE, KL) of the first 128 training images for a model whose weights are all
/// zero: then logits = fc3.bias, μ = fc_mu.bias, log σ² = fc_logvar.bias whatever x and ε.
fn constant_model_loss(b3: f32, mu: f32, logvar: f32) -> (f64, f64, f64) {
    let data = mnist();
    let config = ModelConfig::tutorial(ModelKind::Vae);
    let mut model = Model::init(config.clone(), 1);
    model.params.fill(0.0);
    let lay = &model.network.layout;
    model.params[lay.output.b.clone()].fill(b3);
    let l = config.latent_dim;
    model.params[lay.head.b.start..lay.head.b.start + l].fill(mu);
    model.params[lay.head.b.start + l..lay.head.b.end].fill(logvar);
    let pool = Pool::new(2);
    let mut ws = Workspace::new(&config, 128, 2);
    let idx: Vec<u32> = (0..128).collect();
    fill_inputs(&pool, &data.train, &idx, &config, &mut ws, None, None);
    ws.eps.iter_mut().enumerate().for_each(|(i, e)| *e = (i % 7) as f32 - 3.0);
    let loss = model.network.forward(&pool, &model.params, &mut ws);
    let sum_x: f64 = data.train.images[..128 * 784].iter().map(|&v| v as f64 / 255.0).sum();
    (loss.bce / 128.0, loss.kl / 128.0, sum_x / 128.0)
}

#[test]
fn untrained_zero_model_costs_784_ln2_nats_and_no_kl() {
    // logits 0 ⇒ every pixel costs ln 2 whatever x: 784·ln 2 = 543.4273 nats; μ = 0, σ² = 1 ⇒ KL = 0.
    let (bce, kl, _) = constant_model_loss(0.0, 0.0, 0.0);
    assert!((bce - 784.0 * std::f64::consts::LN_2).abs() < 1e-3, "{bce}");
    assert_eq!(kl, 0.0);
}

#[test]
fn constant_model_losses_match_the_closed_form() {
    // BCE per pixel with logit b: softplus(b) − x·b, so per example 784·softplus(2) − 2·Σx.
    // KL per dimension with μ = 1, σ² = 4: ½(μ² + σ² − 1 − ln σ²) = 2 − ln 2; 20 dimensions.
    let (bce, kl, mean_sum_x) = constant_model_loss(2.0, 1.0, 4f32.ln());
    let softplus2 = (1.0 + 2f64.exp()).ln();
    let want_bce = 784.0 * softplus2 - 2.0 * mean_sum_x;
    // The core sums 784 f32 terms per example: allow a relative 1e-5 (0.015 nats here).
    assert!((bce - want_bce).abs() < 1e-5 * want_bce, "{bce} vs {want_bce}");
    let want_kl = 20.0 * (2.0 - std::f64::consts::LN_2);
    assert!((kl - want_kl).abs() < 1e-4, "{kl} vs {want_kl}");
}

fn small_trainer(kind: ModelKind, seed: u64, threads: usize) -> Trainer {
    small_trainer_with(kind, seed, threads, Objective::Elbo)
}

fn small_trainer_with(kind: ModelKind, seed: u64, threads: usize, objective: Objective) -> Trainer {
    small_trainer_of(ModelConfig::tutorial(kind), seed, threads, objective)
}

fn small_trainer_of(config: ModelConfig, seed: u64, threads: usize, objective: Objective) -> Trainer {
    small_trainer_micro(config, seed, threads, objective, 1)
}

/// [`small_trainer_of`] computing each batch in `micro` micro-batches.
fn small_trainer_micro(config: ModelConfig, seed: u64, threads: usize, objective: Objective, micro: usize) -> Trainer {
    let train = TrainConfig {
        epochs: 2,
        batch_size: 64,
        adam: AdamConfig::default(),
        beta: 1.0,
        seed,
        threads,
        dataset: Source::Mnist,
        train_limit: Some(1280),
        test_limit: Some(500),
        binarize: Default::default(),
        objective,
        lr_schedule: Default::default(),
        init: Default::default(),
        output_bias: Default::default(),
        kl_warmup: 0,
        augment: Default::default(),
        precision: Default::default(),
        world_size: 1,
        micro_batches: micro,
        gamma: None,
    };
    let model = Model::init(config, seed);
    let adam = AdamState::new(model.params.len());
    Trainer::new(train, model, adam, 0, mnist())
}

fn step_losses(t: &mut Trainer) -> Vec<f64> {
    let mut all = Vec::new();
    for _ in 0..2 {
        t.train_epoch(&mut |_, _, running| all.push(running)).unwrap();
    }
    all
}

#[test]
fn same_seed_and_threads_give_identical_losses_and_weights() {
    for kind in [ModelKind::Vae, ModelKind::Cvae] {
        let (mut a, mut b) = (small_trainer(kind, 5, 2), small_trainer(kind, 5, 2));
        assert_eq!(step_losses(&mut a), step_losses(&mut b));
        assert_eq!(a.model.params, b.model.params);
        assert_eq!(a.test_loss().unwrap(), b.test_loss().unwrap());
        let mut c = small_trainer(kind, 6, 2);
        assert_ne!(step_losses(&mut c), step_losses(&mut small_trainer(kind, 5, 2)));
    }
}

#[test]
fn a_few_hundred_steps_learn_mnist() {
    // 40 steps of 64 on 2,560 images: from 543 nats (784·ln 2 at logits 0) to well under 250.
    for kind in [ModelKind::Vae, ModelKind::Cvae, ModelKind::Ae] {
        let mut t = small_trainer(kind, 1, 2);
        let before = t.test_loss().unwrap().unwrap();
        step_losses(&mut t);
        let after = t.test_loss().unwrap().unwrap();
        let (b, a) = (before.bce + before.kl, after.bce + after.kl);
        assert!(b > 500.0 && a < 250.0, "{kind}: test loss {b} -> {a}");
        if kind == ModelKind::Ae {
            assert_eq!(after.kl, 0.0);
        } else {
            assert!(after.kl > 1.0, "{kind}: KL {}", after.kl);
        }
    }
}

#[test]
fn importance_weighted_training_learns_and_is_reproducible() {
    for kind in [ModelKind::Vae, ModelKind::Cvae] {
        let iwae = Objective::Iwae { k: 5 };
        let mut t = small_trainer_with(kind, 1, 2, iwae);
        let before = t.test_loss().unwrap().unwrap();
        let losses = step_losses(&mut t);
        let after = t.test_loss().unwrap().unwrap();
        let (b, a) = (before.bce + before.kl, after.bce + after.kl);
        assert!(b > 500.0 && a < 250.0, "{kind} iwae: test loss {b} -> {a}");
        assert!(losses.last().unwrap() < &(0.5 * losses[0]), "{kind} iwae: running loss {losses:?}");
        let mut again = small_trainer_with(kind, 1, 2, iwae);
        assert_eq!(step_losses(&mut again), losses);
        assert_eq!(again.model.params, t.model.params);
    }
}

/// Augmentation transforms each image of a batch on its own: on images that are their own
/// mirror, `--augment hflip` must train exactly as no augmentation (its draws come from a
/// stream of their own), whereas a flip that mixed pixels across the batch's images, or
/// across the features × batch layout, would not. With shifts, the run differs.
#[test]
fn mirror_flips_of_symmetric_images_change_nothing() {
    let symmetric = |mut t: Trainer| {
        let split = &mut t.data.train;
        for img in split.images.chunks_exact_mut(784) {
            for y in 0..28 {
                for x in 0..14 {
                    let v = img[y * 28 + x].max(img[y * 28 + 27 - x]);
                    (img[y * 28 + x], img[y * 28 + 27 - x]) = (v, v);
                }
            }
        }
        t
    };
    let with = |augment: vae::data::Augment| {
        let mut t = symmetric(small_trainer(ModelKind::Cvae, 5, 2));
        t.config.augment = augment;
        let losses = step_losses(&mut t);
        (losses, t.model.params)
    };
    let plain = with(Default::default());
    assert_eq!(plain, with(vae::data::Augment { hflip: true, crop: 0 }));
    assert_ne!(plain.0, with(vae::data::Augment { hflip: true, crop: 2 }).0);
}

/// Two workers, each computing half of every batch and summing gradients and losses, train
/// what one trainer trains on the whole batch: every draw (noise, binarization coins,
/// augmentation) belongs to its example, so only the order of the sums differs. The two
/// workers' weights are identical to the bit; against the single trainer they agree to float
/// rounding, and so do the test losses (issue 27's parity, without MPI).
#[test]
fn two_workers_train_what_one_trainer_trains() {
    use vae::core::collective::LocalGroup;
    use vae::data::{Augment, Binarize};
    let setups: [(Objective, Binarize, Augment); 3] = [
        (Objective::Elbo, Binarize::None, Augment::default()),
        (Objective::Iwae { k: 3 }, Binarize::Dynamic, Augment::default()),
        (Objective::Elbo, Binarize::None, Augment { hflip: true, crop: 2 }),
    ];
    for (objective, binarize, augment) in setups {
        let make_micro = |micro: usize| {
            let mut t = small_trainer_micro(ModelConfig::tutorial(ModelKind::Cvae), 3, 1, objective, micro);
            (t.config.binarize, t.config.augment) = (binarize, augment);
            t
        };
        let make = || make_micro(1);
        let mut alone = make();
        let epochs = |t: &mut Trainer| {
            let mut tests = Vec::new();
            for _ in 0..2 {
                t.train_epoch(&mut |_, _, _| {}).unwrap();
                tests.push(t.test_loss().unwrap().unwrap());
            }
            tests
        };
        let want = epochs(&mut alone);
        let workers: Vec<(Vec<f32>, Vec<vae::train::TestLoss>)> = std::thread::scope(|s| {
            let handles: Vec<_> = LocalGroup::new(2)
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let mut t = make();
                        t.join(Box::new(g)).unwrap();
                        let tests = epochs(&mut t);
                        (t.model.params.clone(), tests)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let label = format!("{objective:?} {binarize:?} {augment:?}");
        assert_eq!(workers[0].0, workers[1].0, "{label}: the workers' weights differ");
        assert_eq!(workers[0].1, workers[1].1, "{label}");
        for (got, want) in workers[0].1.iter().zip(&want) {
            let (g, w) = (got.bce + got.kl, want.bce + want.kl);
            assert!((g - w).abs() < 1e-3, "{label}: test loss {g} with two workers, {w} alone");
        }
        let drift = workers[0].0.iter().zip(&alone.model.params).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(drift < 1e-3, "{label}: weights drift {drift} from the single trainer's");
        // One trainer computing each batch in two micro-batches adds the same f32 gradients
        // in the same f64 order as the two workers: the same weights, bit for bit.
        let mut micro = make_micro(2);
        let tests = epochs(&mut micro);
        assert!(micro.model.params == workers[0].0, "{label}: two micro-batches differ from two workers");
        for (got, want) in tests.iter().zip(&workers[0].1) {
            let (g, w) = (got.bce + got.kl, want.bce + want.kl);
            assert!((g - w).abs() < 1e-9 * w, "{label}: test loss {g} in micro-batches, {w} on two workers");
        }
    }
}

#[test]
fn a_batch_that_does_not_split_evenly_is_refused() {
    let mut t = small_trainer(ModelKind::Vae, 1, 1);
    let err = t.join(Box::new(vae::core::collective::LocalGroup::new(3).remove(0))).unwrap_err();
    assert!(err.contains("--batch-size 64 does not split evenly across 3 workers") && err.contains("e.g. 66"), "{err}");
    let mut t = small_trainer_micro(ModelConfig::tutorial(ModelKind::Vae), 1, 1, Objective::Elbo, 4);
    let err = t.join(Box::new(vae::core::collective::LocalGroup::new(3).remove(0))).unwrap_err();
    assert!(err.contains("4 equal micro-batches on each of 3 workers") && err.contains("e.g. 72"), "{err}");
    let mut c = t.config.clone();
    c.micro_batches = 3;
    let err = c.validate().unwrap_err();
    assert!(
        err.contains("--batch-size 64 does not split into 3 equal micro-batches") && err.contains("e.g. 66"),
        "{err}"
    );
}

/// The per-image losses of a test pass add up to the pass's own sums.
#[test]
fn per_image_losses_add_up_to_the_test_loss() {
    use vae::core::{Purpose, Rng};
    for kind in [ModelKind::Vae, ModelKind::Cvae] {
        let mut t = small_trainer(kind, 2, 2);
        t.train_epoch(&mut |_, _, _| {}).unwrap();
        let rng = || Rng::stream(5, Purpose::Eval, 0);
        let each = vae::train::evaluate_each(&t.model, &t.data.test, &t.pool, rng());
        let whole = vae::train::evaluate(&t.model, &t.data.test, &t.pool, rng());
        assert_eq!(each.len(), t.data.test.len());
        let mean = each.iter().sum::<f64>() / each.len() as f64;
        assert!((mean - (whole.bce + whole.kl)).abs() < 1e-6 * mean, "{kind}: {mean} vs {whole:?}");
    }
}

/// Workers whose weights drifted apart (a flipped bit) are caught before a checkpoint, on
/// every worker, naming the one that differs.
#[test]
fn workers_that_drift_apart_are_stopped() {
    use vae::core::collective::{CollectiveError, LocalGroup};
    let results: Vec<Result<(), CollectiveError>> = std::thread::scope(|s| {
        let handles: Vec<_> = LocalGroup::new(2)
            .into_iter()
            .map(|g| {
                s.spawn(move || {
                    let mut t = small_trainer(ModelKind::Vae, 1, 1);
                    t.join(Box::new(g)).unwrap();
                    t.train_epoch(&mut |_, _, _| {}).unwrap();
                    t.check_agreement()?; // in step: agreed
                    if t.batch_part().start > 0 {
                        t.model.params[7] = f32::from_bits(t.model.params[7].to_bits() ^ 1);
                    }
                    t.check_agreement()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for r in results {
        let e = r.unwrap_err();
        assert!(matches!(e, CollectiveError::Drift { rank: 1, epoch: 1, .. }), "{e}");
        assert!(e.to_string().contains("worker 1's parameters differ from worker 0's after epoch 1"), "{e}");
    }
}

/// Every architecture, prior and likelihood splits across workers as the tutorial's model
/// does: the workers agree to the bit, and their test loss is the lone trainer's up to
/// summation order (an MPI build's ranks sum exactly as these workers do: tests/mpi.rs).
#[test]
fn two_workers_train_every_architecture_prior_and_likelihood_as_one_trainer() {
    use vae::core::Shape;
    use vae::model::config::Prior;
    use vae::model::{Likelihood, ModelConfig};
    let mnist = Shape::mnist();
    let small_conv = |c: ModelConfig| ModelConfig { widths: vec![8, 16], ..c };
    let configs = [
        ("conv", small_conv(ModelConfig::conv(ModelKind::Vae, mnist, 8))),
        ("resnet", ModelConfig { blocks: 1, ..small_conv(ModelConfig::resnet(ModelKind::Cvae, mnist, 8, 1)) }),
        ("vamp", ModelConfig { prior: Prior::Vamp { pseudo_inputs: 10 }, ..ModelConfig::tutorial(ModelKind::Vae) }),
        ("mog", ModelConfig { prior: Prior::Mog { components: 4 }, ..ModelConfig::tutorial(ModelKind::Vae) }),
        (
            "logistic mixture",
            ModelConfig {
                likelihood: Likelihood::LogisticMixture { mixtures: 3 },
                ..small_conv(ModelConfig::conv(ModelKind::Vae, mnist, 8))
            },
        ),
    ];
    for (label, config) in configs {
        let make = || small_trainer_of(config.clone(), 4, 1, Objective::Elbo);
        let mut alone = make();
        alone.train_epoch(&mut |_, _, _| {}).unwrap();
        let want = alone.test_loss().unwrap().unwrap();
        // Two micro-batches on one trainer: the workers' bits.
        let mut micro = small_trainer_micro(config.clone(), 4, 1, Objective::Elbo, 2);
        micro.train_epoch(&mut |_, _, _| {}).unwrap();
        let workers: Vec<(Vec<f32>, vae::train::TestLoss)> = std::thread::scope(|s| {
            let handles: Vec<_> = vae::core::collective::LocalGroup::new(2)
                .into_iter()
                .map(|g| {
                    s.spawn(move || {
                        let mut t = make();
                        t.join(Box::new(g)).unwrap();
                        t.train_epoch(&mut |_, _, _| {}).unwrap();
                        let test = t.test_loss().unwrap().unwrap();
                        (t.model.params, test)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert!(workers[0] == workers[1], "{label}: the workers differ");
        assert!(micro.model.params == workers[0].0, "{label}: two micro-batches differ from two workers");
        let (g, w) = (workers[0].1.bce + workers[0].1.kl, want.bce + want.kl);
        assert!((g - w).abs() < 1e-4 * w.abs(), "{label}: test loss {g} with two workers, {w} alone");
    }
}

/// FactorVAE (Kim & Mnih 2018) with a small discriminator: its permutations belong to the
/// batch's part, so two workers train exactly what one trainer in two micro-batches trains;
/// the discriminator's weights move by their own Adam, and the model learns.
#[test]
fn factorvae_trains_the_same_bits_on_two_workers_as_in_two_micro_batches() {
    use vae::model::config::Discriminator;
    let config = ModelConfig {
        discriminator: Some(Discriminator { hidden: 32, layers: 2 }),
        ..ModelConfig::tutorial(ModelKind::Vae)
    };
    let make = |micro: usize| {
        let mut t = small_trainer_micro(config.clone(), 2, 1, Objective::Factorvae, micro);
        t.config.gamma = Some(10.0);
        t
    };
    let mut micro = make(2);
    let start = micro.model.params.clone();
    let before = micro.test_loss().unwrap().unwrap();
    micro.train_epoch(&mut |_, _, _| {}).unwrap();
    let after = micro.test_loss().unwrap().unwrap();
    assert!(after.bce + after.kl < before.bce + before.kl - 100.0, "{before:?} -> {after:?}");
    let disc = micro.model.network.layout.model_len..micro.model.params.len();
    assert_eq!(disc.len(), (20 * 32 + 32) + (32 * 32 + 32) + (32 * 2 + 2));
    assert!(micro.model.params[disc.clone()] != start[disc], "the discriminator must train");
    let workers: Vec<Vec<f32>> = std::thread::scope(|s| {
        let handles: Vec<_> = vae::core::collective::LocalGroup::new(2)
            .into_iter()
            .map(|g| {
                let mut t = make(1);
                s.spawn(move || {
                    t.join(Box::new(g)).unwrap();
                    t.train_epoch(&mut |_, _, _| {}).unwrap();
                    t.model.params
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(workers[0] == workers[1] && workers[0] == micro.model.params, "two workers ≠ two micro-batches");
    // Without a discriminator the objective is refused by validation of the run, and γ
    // without the objective names the flag.
    let mut c = make(1).config;
    c.objective = Objective::Elbo;
    assert!(c.validate().unwrap_err().contains("--gamma weights FactorVAE's total correlation"));
}
