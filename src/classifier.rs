//! `vae classifier train`: trains the built-in classifier and saves it like a VAE run
//! (`config.json` + `model.safetensors`), by default in `runs/classifier-<dataset>/`.

use crate::checkpoint::dirkind::DirKind;
use crate::checkpoint::{CheckpointError, read, tensors_bytes, tensors_from_bytes, write};
use crate::core::{AdamConfig, AdamState, Pool, Purpose, Rng, adam_step};
use crate::data::{Dataset, Source};
use crate::model::classifier::{Classifier, ClassifierConfig, ClassifierWorkspace, softmax_cross_entropy};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What `config.json` of a classifier run holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassifierRun {
    /// Always [`DirKind::Classifier`]: what the directory is (see `dirkind`).
    #[serde(default = "crate::checkpoint::dirkind::classifier")]
    pub kind: DirKind,
    pub classifier: ClassifierConfig,
    pub dataset: Source,
    pub epochs: usize,
    pub seed: u64,
    /// Test-set accuracy after the last epoch, in [0, 1].
    pub test_accuracy: f64,
    pub version: String,
}

/// Options of `vae classifier train`.
#[derive(Clone, Debug)]
pub struct ClassifierOptions {
    pub dataset: Source,
    /// `None`: [`DEFAULT_EPOCHS`], or for a small image folder enough epochs for about
    /// [`DEFAULT_STEPS`] steps.
    pub epochs: Option<usize>,
    pub seed: u64,
    pub threads: usize,
    pub out: Option<PathBuf>,
    /// Train on N images only, a sample stratified across classes (seeded by `seed`).
    pub train_limit: Option<usize>,
    pub quiet: bool,
    /// Replace a classifier already saved in the output directory.
    pub force: bool,
    /// Convolutional or MLP (`None`: conv for an image folder, the MLP for MNIST-format data).
    pub arch: Option<crate::model::Arch>,
}

/// `runs/classifier-mnist`, `runs/classifier-fashion-mnist`, `runs/classifier-<folder>`, or
/// `runs/classifier-<folder>-<S>px` for a folder read at `--image-size S`.
pub fn default_dir(dataset: &Source) -> PathBuf {
    let name = match dataset {
        Source::Mnist => "mnist".to_string(),
        Source::FashionMnist => "fashion-mnist".to_string(),
        Source::Dsprites => "dsprites".to_string(),
        Source::Dir(d) | Source::Arrays(d) => {
            d.file_name().map_or("custom".into(), |n| n.to_string_lossy().into_owned())
        }
        // A folder's judges at different sizes coexist: `classifier-icons-32px`, `-64px`.
        Source::Folder(f) => {
            let name = f.dir.file_name().map_or("custom".into(), |n| n.to_string_lossy().into_owned());
            match f.image_size {
                Some(s) => format!("{name}-{s}px"),
                None => name,
            }
        }
    };
    PathBuf::from("runs").join(format!("classifier-{name}"))
}

/// Epochs of MNIST-format data when `--epochs` is not given (7,020 steps on MNIST).
pub const DEFAULT_EPOCHS: usize = 15;
/// Steps an image folder's classifier takes when `--epochs` is not given (at least
/// [`DEFAULT_EPOCHS`] epochs, at most [`MAX_DEFAULT_EPOCHS`]).
pub const DEFAULT_STEPS: usize = 3000;
pub const MAX_DEFAULT_EPOCHS: usize = 1000;

/// Examples per step (at most) and the random shift of the augmentation (pixels).
const BATCH: usize = 128;
const SHIFT: i32 = 2;

/// Trains the classifier with Adam (cosine learning-rate decay) on cross-entropy, shifting
/// images by up to ±2 pixels.
///
/// # Errors
/// If `epochs` is 0; the output directory is another kind of directory, or already holds a
/// classifier and `force` is not set; the data cannot be loaded, is unlabelled or has fewer than 2
/// training images; the directory cannot be created or is locked by another process; or the
/// classifier cannot be saved.
pub fn train_classifier(opts: &ClassifierOptions) -> anyhow::Result<(PathBuf, ClassifierRun)> {
    if opts.epochs == Some(0) {
        anyhow::bail!("--epochs must be at least 1");
    }
    let dir = opts.out.clone().unwrap_or_else(|| default_dir(&opts.dataset));
    check_out(&dir, opts.force)?;
    let mut data = Dataset::load(&opts.dataset)?;
    if let Some(n) = opts.train_limit {
        data.train = crate::data::subset::sample(&data.train, n, opts.seed);
    }
    if data.classes.len() < 2 {
        anyhow::bail!(
            "{} is unlabelled: a classifier needs class sub-folders (DIR/<class>/image.png), at least two",
            opts.dataset
        );
    }
    if data.train.len() < 2 {
        anyhow::bail!("the classifier needs at least 2 training images (--train-limit)");
    }
    // Batches of 128, or the whole training set when it is smaller.
    let batch = BATCH.min(data.train.len());
    std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
    // One writer at a time; checked again under the lock.
    let _lock = crate::lock::DirLock::acquire(&dir)?;
    check_out(&dir, opts.force)?;
    let (shape, classes) = (data.train.shape, data.classes.len());
    let folder = matches!(opts.dataset, Source::Folder(_));
    let conv = opts.arch.map_or(folder, |a| a == crate::model::Arch::Conv);
    let config = match conv {
        true => ClassifierConfig::conv_for_data(shape, classes),
        false => ClassifierConfig::for_data(shape, classes),
    };
    // Pictures of things may be mirrored; digits and letters may not.
    let augment = (SHIFT, folder);
    if !opts.quiet {
        println!(
            "training a {} classifier ({} parameters) on {}: {} train / {} test images",
            config.describe(),
            crate::text::group(config.layout().2),
            opts.dataset,
            data.train.len(),
            data.test.len()
        );
    }
    let mut clf = Classifier::init(config.clone(), opts.seed);
    let pool = Pool::new(opts.threads);
    let adam_config = AdamConfig::default();
    let mut adam = AdamState::new(clf.params.len());
    let mut grads = vec![0.0f32; clf.params.len()];
    let mut ws = ClassifierWorkspace::with_threads(&config, batch, pool.threads());
    let mut order: Vec<u32> = (0..data.train.len() as u32).collect();
    let steps = data.train.len() / batch;
    let epochs = match (opts.epochs, matches!(opts.dataset, Source::Folder(_))) {
        (Some(e), _) => e,
        (None, true) => DEFAULT_STEPS.div_ceil(steps).clamp(DEFAULT_EPOCHS, MAX_DEFAULT_EPOCHS),
        (None, false) => DEFAULT_EPOCHS,
    };
    // Long trainings print about 20 lines, not one per epoch.
    let every = epochs.div_ceil(20);
    let mut labels = Vec::with_capacity(batch);
    let mut accuracy = 0.0;
    for epoch in 1..=epochs {
        let start = Instant::now();
        let mut rng = Rng::stream(opts.seed, Purpose::Shuffle, 1_000_000 + epoch as u64);
        order.iter_mut().enumerate().for_each(|(i, o)| *o = i as u32);
        rng.shuffle(&mut order);
        let mut loss = 0.0;
        for step in 0..steps {
            let idx = &order[step * batch..(step + 1) * batch];
            clf.fill_batch(&data.train, idx, augment, &mut rng, &mut ws);
            clf.forward(&pool, &mut ws);
            labels.clear();
            labels.extend(idx.iter().map(|&i| data.train.labels[i as usize]));
            loss += softmax_cross_entropy(&mut ws.logits, &labels, batch);
            clf.backward(&pool, &mut grads, &mut ws);
            // Cosine decay of the learning rate to 0 (Loshchilov & Hutter 2017, without restarts).
            let progress = ((epoch - 1) * steps + step) as f64 / (epochs * steps) as f64;
            let lr = adam_config.lr * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())) as f32;
            adam_step(&pool, &AdamConfig { lr, ..adam_config }, &mut clf.params, &grads, &mut adam);
        }
        if epoch % every != 0 && epoch != epochs {
            continue;
        }
        accuracy = clf.accuracy(&pool, &data.test);
        if !opts.quiet {
            println!(
                "epoch {epoch:>3}/{}  train cross-entropy {:.4}  test accuracy {:.2}%  {:.2} s",
                epochs,
                loss / (steps * batch) as f64,
                100.0 * accuracy,
                start.elapsed().as_secs_f64()
            );
        }
    }
    // Checked again: another command may have written the directory while this one trained.
    check_out(&dir, opts.force)?;
    let run = ClassifierRun {
        kind: DirKind::Classifier,
        classifier: config,
        dataset: opts.dataset.clone(),
        epochs,
        seed: opts.seed,
        test_accuracy: accuracy,
        version: env!("CARGO_PKG_VERSION").to_string(),
    };
    save_classifier(&dir, &run, &clf)?;
    Ok((dir, run))
}

/// Whether `dir` may receive a new classifier: empty, or a classifier with `--force`.
/// Never another kind of directory, whatever the flags.
fn check_out(dir: &Path, force: bool) -> anyhow::Result<()> {
    let d = dir.display();
    match DirKind::of(dir)? {
        None => Ok(()),
        Some(DirKind::Classifier) if force => Ok(()),
        Some(DirKind::Classifier) => {
            let held = match load_classifier(dir) {
                Ok((run, _)) => format!("a classifier ({:.2}% test accuracy)", 100.0 * run.test_accuracy),
                Err(_) => "an unreadable classifier".to_string(),
            };
            anyhow::bail!("{d} already holds {held}; pass --force to replace it, or --out DIR to keep both")
        }
        Some(kind) => anyhow::bail!(
            "{d} is {} directory; `vae classifier train` never replaces another kind of directory, \
             --force included: pass another --out",
            kind.describe()
        ),
    }
}

/// Writes a classifier into `dir`: its weights (`model.safetensors`), then its `config.json`.
///
/// # Errors
/// [`CheckpointError::Write`] if either file cannot be written.
pub fn save_classifier(dir: &Path, run: &ClassifierRun, clf: &Classifier) -> Result<(), CheckpointError> {
    let (_, tensors, _) = clf.config.layout();
    let meta = HashMap::from([("format".to_string(), "pt".to_string()), ("model".to_string(), "classifier".into())]);
    write(&dir.join(crate::checkpoint::MODEL_FILE), &tensors_bytes(&tensors, &clf.params, meta))?;
    let json = serde_json::to_string_pretty(run).expect("config serialises");
    write(&dir.join(crate::checkpoint::CONFIG_FILE), format!("{json}\n").as_bytes())
}

/// Loads a classifier run; its weights must have the configured names and shapes.
///
/// # Errors
/// [`CheckpointError::NoClassifier`] if `dir` has no `config.json`, [`CheckpointError::WrongKind`]
/// or [`CheckpointError::Foreign`] if it holds another kind's or one `vae` did not write,
/// [`CheckpointError::NoWeights`] if `model.safetensors` is missing, [`CheckpointError::Read`] if a
/// file cannot be read, and [`CheckpointError::Corrupt`] if either file does not parse or a weight
/// is missing, misshapen or not finite.
pub fn load_classifier(dir: &Path) -> Result<(ClassifierRun, Classifier), CheckpointError> {
    let config_path = dir.join(crate::checkpoint::CONFIG_FILE);
    if DirKind::Classifier.expect(dir)?.is_none() {
        return Err(CheckpointError::NoClassifier(dir.to_owned()));
    }
    let run: ClassifierRun = serde_json::from_slice(&read(&config_path)?).map_err(|e| CheckpointError::Corrupt {
        path: config_path.clone(),
        reason: format!("{e} (is this a classifier made by `vae classifier train`?)"),
    })?;
    let path = dir.join(crate::checkpoint::MODEL_FILE);
    if !path.is_file() {
        return Err(CheckpointError::NoWeights(dir.to_owned()));
    }
    run.classifier.validate().map_err(|reason| CheckpointError::Corrupt { path: config_path.clone(), reason })?;
    let (layers, tensors, len) = run.classifier.layout();
    let params = tensors_from_bytes(&read(&path)?, &tensors, len, &path)?;
    let clf = Classifier { config: run.classifier.clone(), layers, params };
    Ok((run, clf))
}
