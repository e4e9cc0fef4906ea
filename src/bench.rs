//! `vae bench`: times training epochs and the test pass, on embedded MNIST or on random
//! images of any shape (as `reference/torch_conv_reference.py` does with `SHAPE`), and
//! reports throughput, achieved GFLOP/s and peak memory.

use crate::core::collective::{Collective, Timed};
use crate::core::{AdamConfig, AdamState, Purpose, Rng, Shape};
use crate::data::{Dataset, Source, Split};
use crate::model::{Model, ModelConfig};
use crate::train::{Objective, TrainConfig, Trainer};
use anyhow::Result;
use std::time::Instant;

/// What `vae bench` measures.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub model: ModelConfig,
    pub objective: Objective,
    pub epochs: usize,
    pub threads: usize,
    pub batch: usize,
    /// Random binary images of the model's shape, this many steps per epoch (`None`: MNIST).
    pub random_steps: Option<usize>,
    pub json: bool,
    /// The products' number format (bf16 only where the CPU runs it; the CLI refuses it
    /// elsewhere).
    pub precision: crate::core::bf16::Precision,
}

/// `steps · batch` random binary images of `shape` (each value 0 or 255 with probability ½,
/// PyTorch's `torch.rand(...).round()`), and the first 2,000 of them as the test set.
pub fn random_dataset(shape: Shape, steps: usize, batch: usize, classes: usize) -> Dataset {
    let n = steps * batch;
    let mut rng = Rng::stream(1, Purpose::User, 99);
    let images: Vec<u8> = (0..n * shape.size()).map(|_| if rng.next_u64() >> 63 == 1 { 255 } else { 0 }).collect();
    let labels: Vec<u8> = (0..n).map(|_| rng.below(classes.max(1) as u64) as u8).collect();
    let m = n.min(2000);
    let test = Split { images: images[..m * shape.size()].to_vec(), labels: labels[..m].to_vec(), shape };
    Dataset {
        train: Split { images, labels, shape },
        test,
        classes: (0..classes).map(|c| c.to_string()).collect(),
        files: None,
    }
}

/// Peak resident set size of this process in MB (`VmHWM` of /proc/self/status; 0 where
/// that file does not exist).
pub fn peak_rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Where a figure was measured: the CPU's name, family and model, SIMD level (after
/// `VAE_SIMD`), AVX-512 datapath width, bf16/AMX features, caches, and the kernel tuning
/// derived from them.
pub fn cpu_json() -> serde_json::Value {
    let c = crate::core::cpu::cpu();
    serde_json::json!({
        "model_name": c.model_name,
        "vendor": c.vendor,
        "family": c.family,
        "model": c.model,
        "simd": crate::core::simd::level().name(),
        "simd_detected": crate::core::simd::detected().name(),
        "fma_bits": c.fma_bits(),
        "avx512_bf16": c.avx512_bf16,
        "avx512_fp16": c.avx512_fp16,
        "amx_bf16": c.amx_bf16,
        "caches": c.caches,
        "tuning": crate::core::cpu::tuning(),
    })
}

/// `vae bench`: trains `o.epochs` epochs, times them and the test pass, and prints the figures (one
/// JSON object with `o.json`).
///
/// # Errors
/// If the embedded MNIST cannot be decoded, or the loss stops being finite (a diverged epoch).
pub fn bench(o: &BenchOptions) -> Result<()> {
    bench_in(o, None)
}

/// [`bench()`] as one of the data-parallel workers of `workers` (MPI ranks under `mpirun`):
/// each trains its part of every batch; worker 0 prints, with the time spent summing.
///
/// # Errors
/// As [`bench()`], and when the batch does not split evenly across the workers.
pub fn bench_in(o: &BenchOptions, workers: Option<Box<dyn Collective>>) -> Result<()> {
    let t0 = Instant::now();
    let (objective, epochs, json, batch) = (o.objective, o.epochs, o.json, o.batch);
    let config = o.model.clone();
    let kind = config.kind;
    let data = match o.random_steps {
        Some(steps) => random_dataset(config.shape(), steps, batch, config.classes),
        None => Dataset::load(&Source::Mnist)?,
    };
    let threads = if o.threads == 0 { crate::core::pool::available_threads() } else { o.threads };
    let train = TrainConfig {
        epochs,
        batch_size: batch,
        adam: AdamConfig::default(),
        beta: 1.0,
        seed: 1,
        threads,
        dataset: Source::Mnist,
        train_limit: None,
        test_limit: None,
        binarize: Default::default(),
        objective,
        lr_schedule: Default::default(),
        init: Default::default(),
        output_bias: Default::default(),
        kl_warmup: 0,
        augment: Default::default(),
        precision: o.precision,
        world_size: 1,
        micro_batches: 1,
        gamma: None,
    };
    let model = Model::init(config.clone(), train.seed);
    let adam = AdamState::new(model.params.len());
    let mut trainer = Trainer::new(train, model, adam, 0, data);
    let (mut rank, mut world, mut stopwatch) = (0, 1, None);
    if let Some(w) = workers {
        (rank, world) = (w.rank(), w.size());
        let (timed, watch) = Timed::new(w);
        trainer.join(Box::new(timed)).map_err(anyhow::Error::msg)?;
        stopwatch = Some(watch);
    }
    let setup = t0.elapsed().as_secs_f64();
    let mut epoch_secs = Vec::new();
    let mut last = None;
    for _ in 0..epochs {
        let t = Instant::now();
        let e = trainer.train_epoch(&mut |_, _, _| {})?;
        epoch_secs.push(t.elapsed().as_secs_f64());
        last = Some(e);
    }
    let summing = stopwatch.as_ref().map(|w| w.seconds() * 1e3 / (trainer.steps_per_epoch().max(1) * epochs) as f64);
    let t = Instant::now();
    let test = trainer.test_loss()?.unwrap_or_default();
    let test_secs = t.elapsed().as_secs_f64();
    let steps = trainer.steps_per_epoch();
    let mean = epoch_secs.iter().sum::<f64>() / epochs as f64;
    let best = epoch_secs.iter().cloned().fold(f64::INFINITY, f64::min);
    let flops_per_epoch = 2.0 * (config.train_macs_per_example_with(objective.samples()) * steps * batch) as f64;
    let images_per_sec = (steps * batch) as f64 / mean;
    let test_images = trainer.data.test.len();
    let data_name = match o.random_steps {
        Some(_) => format!("random {} images", config.shape()),
        None => "MNIST".to_string(),
    };
    let gflops = flops_per_epoch / mean / 1e9;
    // The bf16 ceiling of this CPU, for the fraction of it a bf16 run reached.
    let peak = if o.precision.runs_bf16() { crate::core::bf16::peak_gflops(&trainer.pool, 0.2) } else { None };
    let rss = peak_rss_mb();
    let train_loss = last.map_or(0.0, |e| (e.loss.bce + e.loss.kl) / e.examples as f64);
    if rank > 0 {
        return Ok(());
    }
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": kind.name(),
                "arch": config.arch,
                "shape": config.shape().to_string(),
                "data": data_name,
                "latent_dim": config.latent_dim,
                "likelihood": config.likelihood.describe(),
                "parameters": trainer.model.params.len(),
                "batch": batch,
                "images_per_sec": images_per_sec,
                "objective": objective,
                "threads": threads,
                "world_size": world,
                "summing_ms_per_step": summing,
                "epochs": epochs,
                "secs_per_epoch": mean,
                "best_secs_per_epoch": best,
                "epoch_secs": epoch_secs,
                "steps_per_sec": steps as f64 / mean,
                "gflops": gflops,
                "peak_rss_mb": rss,
                "setup_secs": setup,
                "test_secs": test_secs,
                "train_loss": train_loss,
                "test_loss": test.bce + test.kl,
                "simd": format!("{:?}", crate::core::simd::level()),
                "precision": o.precision.name(),
                "bf16_peak_gflops": peak,
                "cpu": cpu_json(),
            })
        );
    } else {
        let list: Vec<String> = epoch_secs.iter().map(|s| format!("{s:.3}")).collect();
        let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
        let (t, e) = (plural(threads, "thread"), plural(epochs, "epoch"));
        let t = if world > 1 { format!("{world} processes × {t}") } else { t };
        let trained = match objective {
            Objective::Elbo => String::new(),
            Objective::Iwae { k } => format!(" on IWAE-{k}"),
            Objective::ElboK { k } => format!(" on the {k}-draw ELBO"),
            Objective::Tcvae => " on β-TCVAE's objective".to_string(),
            Objective::Factorvae => " on FactorVAE's objective".to_string(),
        };
        let arch = config.layers_summary();
        println!(
            "model {kind} ({arch}, latent {}, {} parameters){trained} on {data_name}, {t}, {e} of {steps} steps (batch {batch}), SIMD {:?}",
            config.latent_dim,
            crate::text::group(trainer.model.params.len()),
            crate::core::simd::level()
        );
        println!("cpu                 {}", crate::core::cpu::cpu().summary());
        let path = o.precision.path().map_or_else(|e| e, String::from);
        println!("precision           {path}");
        println!("seconds per epoch   {mean:.3} (best {best:.3}; each: {})", list.join(", "));
        println!("steps per second    {:.1}", steps as f64 / mean);
        if let Some(ms) = summing {
            let share = 100.0 * ms * steps as f64 / 1e3 / mean;
            println!(
                "summing per step    {ms:.2} ms ({share:.0}% of a step, waiting for the slowest process included)"
            );
        }
        println!("images per second   {images_per_sec:.0}");
        println!("achieved GFLOP/s    {gflops:.1} ({:.1} GFLOP per epoch)", flops_per_epoch / 1e9);
        if let Some(peak) = peak {
            println!(
                "bf16 peak           {peak:.0} GFLOP/s ({}, measured by a 0.2 s probe): this run reached {:.0}% of it",
                crate::text::plural(threads, "thread"),
                100.0 * gflops / peak
            );
        }
        println!(
            "test pass           {test_secs:.3} s ({test_images} images), test loss {:.3} nats/example",
            test.bce + test.kl
        );
        println!("set-up (data+init)  {setup:.3} s");
        println!("peak RSS            {rss:.1} MB");
    }
    Ok(())
}
