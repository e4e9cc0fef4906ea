//! `vae train`: a new run or a resumed one, Ctrl-C, and the files it ends with; its flags
//! and what they become are in `options.rs`.

use super::launch::{Group, check_batch};
use super::{curves, group, load_data};
use crate::checkpoint::{RunConfig, RunDir};
use crate::core::AdamConfig;
use crate::core::Shape;
use crate::data::Source;
use crate::model::ModelKind;
use crate::run::{RECONSTRUCTIONS, ResumeChanges, Role, Run};
use crate::train::TrainConfig;
use anyhow::Context as _;
use anyhow::{Result, bail};
use std::path::PathBuf;

mod options;

pub use options::*;

/// `vae train`: trains a new run, or continues one with `--resume`.
///
/// # Errors
/// If a flag the run's config fixes is given with `--resume`, a flag is invalid, the data cannot be
/// loaded, the run directory cannot be created, locked, read or written (see [`Run::create`] and
/// [`Run::resume`]), training diverges or is interrupted, or the closing pictures cannot be
/// written.
pub fn train(a: TrainArgs) -> Result<()> {
    let mut group = Group::from_launcher()?;
    let result = train_in(a, &mut group);
    group.conclude(result)
}

/// [`train`] as a process of `group`: rank 0 (or a process alone) writes the run and prints;
/// the other ranks train their part of every batch silently.
fn train_in(a: TrainArgs, group: &mut Group) -> Result<()> {
    let quiet = a.quiet || group.role == Role::Follower;
    let Some(mut run) = open_as(&a, group)? else { return Ok(()) };
    if let Some(collective) = group.take_collective() {
        run.trainer.join(collective).map_err(anyhow::Error::msg)?;
    }
    if !quiet {
        announce(&run);
    }
    // First Ctrl-C: stop before the next step, keeping every completed epoch (the error names
    // the resume command). A second one exits at once, which is safe too: files are replaced
    // atomically.
    let interrupt = run.trainer.interrupt.clone();
    let _ = ctrlc::set_handler(move || {
        if interrupt.swap(true, std::sync::atomic::Ordering::SeqCst) {
            std::process::exit(130);
        }
    });
    let (step, start) = (run.trainer.adam.step, std::time::Instant::now());
    run.train(quiet)?;
    if group.role == Role::Follower {
        return Ok(());
    }
    group.report(run.trainer.adam.step - step, start.elapsed().as_secs_f64());
    finish(&run, a.fit_sampler, a.quiet)
}

/// The run the flags ask for, ready to train: a new one, or `--resume`'s. `None` when it has
/// already completed its epochs (said on stdout, and its closing pictures made if it was
/// killed before them).
///
/// # Errors
/// As [`train`], for everything before the first step.
pub fn open(a: &TrainArgs) -> Result<Option<Run>> {
    open_as(a, &Group::alone())
}

/// [`open`] for a process of `group`: a follower reads the run rank 0 writes, and says
/// nothing.
fn open_as(a: &TrainArgs, group: &Group) -> Result<Option<Run>> {
    let quiet = a.quiet || group.role == Role::Follower;
    let run = if let Some(dir) = a.resume.clone() {
        let fixed: [(&str, bool); 36] = [
            ("--augment", a.augment.is_some()),
            ("--kl-warmup", a.kl_warmup.is_some()),
            ("--prior", a.prior.is_some()),
            ("--pseudo-inputs", a.pseudo_inputs.is_some()),
            ("--components", a.components.is_some()),
            ("--lr-schedule", a.lr_schedule.is_some()),
            ("--adam-eps", a.adam_eps.is_some()),
            ("--init", a.init.is_some()),
            ("--output-bias", a.output_bias.is_some()),
            ("--arch", a.arch.is_some()),
            ("--widths", a.widths.is_some()),
            ("--blocks", a.blocks.is_some()),
            ("--likelihood", a.likelihood.is_some()),
            ("--sigma", a.sigma.is_some()),
            ("--mixtures", a.mixtures.is_some()),
            ("--objective", a.objective.is_some()),
            ("--k", a.k.is_some()),
            ("--binarize", a.binarize.is_some()),
            ("--model", a.model.is_some()),
            ("--hidden-layers", a.hidden_layers.is_some()),
            ("--activation", a.activation.is_some()),
            ("--latent-dim", a.latent_dim.is_some()),
            ("--hidden-dim", a.hidden_dim.is_some()),
            ("--beta", a.beta.is_some()),
            ("--gamma", a.gamma.is_some()),
            ("--factors", a.factors.is_some()),
            ("--batch-size", a.batch_size.is_some()),
            ("--seed", a.seed.is_some()),
            ("--dataset", a.data.dataset.is_some()),
            ("--image-size", a.data.image_size.is_some()),
            ("--color", a.data.color.is_some()),
            ("--background", a.data.background.is_some()),
            ("--test-fraction", a.data.test_fraction.is_some()),
            ("--train-limit", a.train_limit.is_some()),
            ("--test-limit", a.test_limit.is_some()),
            ("--precision", a.precision.is_some()),
        ];
        if let Some((flag, _)) = fixed.iter().find(|(_, given)| *given) {
            bail!(
                "{flag} cannot be changed when resuming: the run's config.json fixes it (only --epochs, --lr, --threads, --micro-batches, and --data-dir for a folder that moved, may be given with --resume)"
            );
        }
        let config = RunDir::new(&dir).load_config()?;
        let micro = a.micro_batches.unwrap_or(config.train.micro_batches);
        check_batch(config.train.batch_size, group.size, micro)?;
        let threads = a.threads.map(|t| resolve_threads(t, group));
        if let Some(t) = threads.filter(|&t| t != config.train.threads)
            && !quiet
        {
            eprintln!(
                "note: resuming on {t} thread{} where the run used {}: sums now add up in another order, so from here \
                 on the figures and weights differ in the last bits from an uninterrupted run",
                if t == 1 { "" } else { "s" },
                config.train.threads
            );
        }
        let (parts, recorded) = (group.size * micro, config.train.world_size * config.train.micro_batches);
        if parts != recorded && !quiet {
            eprintln!(
                "note: resuming with each batch in {parts} part{} (processes × micro-batches) where the run used \
                 {recorded}: sums now add up in another order, so from here on the figures and weights differ in the \
                 last bits from an uninterrupted run (--micro-batches {} keeps them)",
                if parts == 1 { "" } else { "s" },
                if recorded.is_multiple_of(group.size) { (recorded / group.size).to_string() } else { "N".into() },
            );
        }
        let run_dir = RunDir::new(&dir);
        let moved_to = a.data.data_dir.as_deref();
        let source = crate::rundata::source(&run_dir, &config, moved_to)?;
        let (data, _) = load_data(&source, quiet)?;
        // A moved folder must hold the same images; one changed in place is trained on as it
        // is now, with a warning (and the record follows it).
        crate::rundata::check(&run_dir, &source, &data, moved_to.is_some(), quiet)?;
        let moved = moved_to.map(|_| source);
        let world_size = Some(group.size);
        let changes =
            ResumeChanges { epochs: a.epochs, lr: a.lr, threads, moved, world_size, micro_batches: Some(micro) };
        Run::resume_as(dir, changes, data, group.role)?
    } else {
        let seed = a.seed.unwrap_or(1);
        check_early(a)?;
        check_batch(a.batch_size.unwrap_or(128), group.size, a.micro_batches.unwrap_or(1))?;
        let (data, source) = load_data(&a.data.source(seed)?, quiet)?;
        let kind = a.model.unwrap_or(ModelKind::Vae);
        let mut model = model_config(a, data.train.shape, data.classes.len())?;
        if matches!(source, Source::Folder(_) | Source::Arrays(_)) {
            model.class_names = data.classes.clone();
        }
        if kind.conditional() && data.classes.len() >= 2 && !quiet {
            warn_small_classes(&data, a.batch_size.unwrap_or(128), a.train_limit);
        }
        let threads = resolve_threads(a.threads.unwrap_or(0), group);
        let schedule = a.lr_schedule.unwrap_or_default();
        let objective = objective(a)?;
        let train = TrainConfig {
            epochs: a.epochs.or(schedule.epochs()).unwrap_or(50),
            batch_size: a.batch_size.unwrap_or(128),
            adam: AdamConfig {
                lr: a.lr.unwrap_or(1e-3),
                eps: a.adam_eps.unwrap_or(AdamConfig::default().eps),
                ..AdamConfig::default()
            },
            beta: a.beta.unwrap_or(1.0),
            seed,
            threads,
            dataset: source,
            train_limit: a.train_limit,
            test_limit: a.test_limit,
            binarize: a.binarize.unwrap_or_default(),
            objective,
            lr_schedule: schedule,
            init: a.init.unwrap_or_default(),
            output_bias: a.output_bias.unwrap_or_default(),
            kl_warmup: a.kl_warmup.unwrap_or_else(|| default_warmup(&model, objective)),
            augment: a.augment.unwrap_or_default().resolve(data.train.shape).map_err(anyhow::Error::msg)?,
            precision: recorded_precision(a.precision.unwrap_or_default()),
            world_size: group.size,
            micro_batches: a.micro_batches.unwrap_or(1),
            gamma: match a.objective {
                Some(ObjectiveName::Factorvae) => Some(a.gamma.unwrap_or(DEFAULT_GAMMA)),
                _ => a.gamma,
            },
        };
        let out = a.out.clone().unwrap_or_else(|| default_run_dir(kind));
        let config = RunConfig {
            kind: crate::checkpoint::dirkind::DirKind::VaeRun,
            model,
            train,
            version: env!("CARGO_PKG_VERSION").to_string(),
        };
        // The folder's factors, checked against its pictures before anything is written.
        let factors = match (&a.factors, &config.train.dataset) {
            (None, _) => None,
            (Some(csv), Source::Folder(folder)) => {
                crate::eval::truth::FolderFactors::load(csv, folder)?;
                Some(std::fs::read(csv).with_context(|| format!("cannot read {}", csv.display()))?)
            }
            (Some(_), _) => {
                bail!(
                    "--factors gives the factors of an image folder's pictures; add --data-dir DIR, or drop --factors"
                )
            }
        };
        let run = Run::create_as(out, config, data, group.role)?;
        if let Some(bytes) = factors.filter(|_| group.role == Role::Writer) {
            let path = run.dir.file(crate::eval::truth::FACTORS_FILE);
            crate::io::write_atomic(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))?;
        }
        run
    };
    let t = &run.trainer;
    if t.epoch >= t.config.epochs {
        if group.role == Role::Follower {
            return Ok(None);
        }
        println!(
            "{} already completed its {}; pass --epochs N (the new total) to train further",
            run.dir.path.display(),
            crate::text::plural(t.config.epochs, "epoch")
        );
        // Killed after its last epoch but before the closing pictures: make them now.
        if !run.dir.file(RECONSTRUCTIONS).exists() {
            run.save_reconstructions()?;
            curves::write_curves(&run.dir, None)?;
        }
        return Ok(None);
    }
    Ok(Some(run))
}

/// The line that starts training: what trains on what, where, and in which precision.
pub fn announce(run: &Run) {
    let t = &run.trainer;
    let verb = if t.epoch > 0 { format!("resuming after epoch {}", t.epoch) } else { "training".into() };
    let augment = t.config.augment;
    println!(
        "{verb} {} ({} parameters{}) on {}: {} train{} / {} test images, {} steps/epoch, {} -> {}",
        t.model.config().kind,
        group(t.model.network.layout.model_len),
        match t.model.network.layout.len - t.model.network.layout.model_len {
            0 => String::new(),
            d => format!(", and a discriminator of {}", group(d)),
        },
        t.config.dataset,
        t.data.train.len(),
        if augment.is_none() { String::new() } else { format!(" ({})", augment.label()) },
        t.data.test.len(),
        t.steps_per_epoch(),
        match t.config.world_size {
            1 => crate::text::plural(t.pool.threads(), "thread"),
            n => format!("{n} processes × {}", crate::text::plural(t.pool.threads(), "thread")),
        },
        run.dir.path.display()
    );
    match t.config.precision.path() {
        Ok(path) if t.config.precision.runs_bf16() => println!("precision: {path}"),
        Ok(_) => {}
        Err(why) => eprintln!("note: --precision {}: {why}; training in f32", t.config.precision.name()),
    }
}

/// The end of a run that trained to its last epoch: the latent mixture (`--fit-sampler K`,
/// 0 to skip), the learning curves and the reconstructions, said on stdout unless `quiet`.
///
/// # Errors
/// If the mixture cannot be fitted or a file cannot be written.
pub fn finish(run: &Run, fit_sampler_k: usize, quiet: bool) -> Result<()> {
    let fitted = fit_sampler(run, fit_sampler_k, quiet)?;
    // Curves first: reconstructions.png is the last file a finished run writes.
    let curves = curves::write_curves(&run.dir, None)?;
    let recon = run.save_reconstructions()?;
    if !quiet {
        println!(
            "done: weights in {}, samples in {}, reconstructions in {}, learning curves in {}",
            run.dir.file(crate::checkpoint::MODEL_FILE).display(),
            run.dir.samples_dir().display(),
            recon.display(),
            curves.display()
        );
        let (d, vae) = (run.dir.path.display(), crate::text::command_name());
        let (c, last) = (&run.config, run.metrics.last());
        if let Some(m) = last
            && c.model.kind.variational()
            && let Some(note) =
                crate::eval::collapse_note(m.test_kl.unwrap_or(m.train_kl), c.train.beta, c.train.kl_warmup)
        {
            eprintln!("{note}");
        }
        if fitted {
            println!(
                "next: `{vae} sample {d}` draws new images from the fitted mixture (`--sampler prior` from N(0, I)), \
                 `{vae} eval {d}` measures it, `{vae} serve {d}` opens it in the browser"
            );
        } else {
            println!("next: `{vae} eval {d}` measures it, `{vae} serve {d}` opens it in the browser");
        }
    }
    Ok(())
}

/// The end of training: fits the latent mixture ([`Run::fit_sampler`]) with up to `k`
/// components, unless `k` is 0 or the model is never sampled, and says what it did. Returns
/// whether a mixture was fitted.
fn fit_sampler(run: &Run, k: usize, quiet: bool) -> Result<bool> {
    let c = run.trainer.model.config();
    if k == 0 || !c.kind.variational() {
        return Ok(false);
    }
    let start = std::time::Instant::now();
    let fitted = run.fit_sampler(k)?;
    if quiet {
        return Ok(true);
    }
    let codes: usize = fitted.mixtures.iter().map(|m| m.codes).sum();
    let gain: f64 = fitted.mixtures.iter().map(|m| (m.log_density - m.prior_log_density) * m.codes as f64).sum::<f64>()
        / codes.max(1) as f64;
    println!(
        "sampler: a Gaussian mixture of up to {k} components{} fitted to {} training codes in {:.1} s \
         ({gain:+.1} nats per code over N(0, I)); epoch {}'s grid redrawn from it -> {}",
        if fitted.mixtures.len() > 1 { " per class" } else { "" },
        group(codes),
        start.elapsed().as_secs_f64(),
        run.trainer.epoch,
        run.grid_path(run.trainer.epoch).display()
    );
    let capped = crate::sampler::capped(&fitted, &run.config.class_names());
    if !capped.is_empty() {
        eprintln!(
            "warning: too few training images for {k} components (one per {} codes) in: {}",
            2 * c.latent_dim,
            capped.join(", ")
        );
    }
    Ok(true)
}

/// Warns when a cvae's class has fewer training images than a batch: its label is then in
/// few steps of an epoch, and it is learned (and sampled) worse than the others.
fn warn_small_classes(data: &crate::data::Dataset, batch: usize, limit: Option<usize>) {
    // A limit's sample takes each class's quota of it: the counts follow without drawing it.
    let all = data.train.label_counts(data.classes.len());
    let counts = limit.map_or_else(|| all.clone(), |n| crate::data::subset::quotas(&all, n));
    let small: Vec<String> = counts
        .iter()
        .zip(&data.classes)
        .filter(|(n, _)| **n < batch)
        .map(|(n, name)| format!("{name} ({n})"))
        .collect();
    if !small.is_empty() {
        eprintln!(
            "warning: {} fewer training images than a batch of {batch}: {}; the cvae sees {} in few steps \
             and learns {} worse (more images, or a smaller --batch-size, help)",
            if small.len() == 1 { "1 class has".to_string() } else { format!("{} classes have", small.len()) },
            small.join(", "),
            if small.len() == 1 { "it" } else { "them" },
            if small.len() == 1 { "it" } else { "them" },
        );
    }
}

/// Checks the model and training flags before any data is read (decoding a large folder
/// takes a while, and a typo should not wait for it), wherever the flags fix the images'
/// shape: MNIST's, or a folder's with `--image-size` (its channels from `--color`, RGB
/// otherwise: either is valid). The class count is checked once the data is loaded.
fn check_early(a: &TrainArgs) -> Result<()> {
    let shape = match (&a.data.data_dir, a.data.image_size) {
        (None, _) if a.data.dataset == Some(super::DatasetName::Dsprites) => crate::data::dsprites::shape(),
        (None, _) => Shape::mnist(),
        (Some(_), Some(s)) => {
            let channels = if a.data.color == Some(crate::data::Color::Grey) { 1 } else { 3 };
            Shape::new(channels, s, s)
        }
        (Some(_), None) => return Ok(()),
    };
    a.augment.unwrap_or_default().resolve(shape).map_err(anyhow::Error::msg)?;
    model_config(a, shape, 10)?.validate().map_err(anyhow::Error::msg)
}

/// The precision a new run records: the one asked for, or f32 where bf16 cannot run here
/// (said once, so that `config.json` and `vae runs` tell what the run trained in).
fn recorded_precision(asked: crate::core::bf16::Precision) -> crate::core::bf16::Precision {
    match asked.path() {
        Ok(_) => asked,
        Err(why) => {
            eprintln!("note: --precision {}: {why}; training in f32 (and config.json says so)", asked.name());
            crate::core::bf16::Precision::F32
        }
    }
}

/// `--threads`: 0 means all cores (shared among the group's processes on this machine).
fn resolve_threads(threads: usize, group: &Group) -> usize {
    if threads == 0 { group.default_threads() } else { threads }
}

/// `runs/<model>-YYYYMMDD-HHMMSS` (UTC), with a suffix if that already exists.
fn default_run_dir(kind: ModelKind) -> PathBuf {
    let base = PathBuf::from("runs").join(format!("{kind}-{}", crate::clock::stamp()));
    let mut path = base.clone();
    let mut i = 2;
    while path.exists() {
        path = PathBuf::from(format!("{}-{i}", base.display()));
        i += 1;
    }
    path
}
