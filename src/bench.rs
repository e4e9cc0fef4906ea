//! `vae bench`: times training epochs and the test pass on embedded MNIST with the default
//! settings, and reports throughput and peak memory.

use crate::core::{AdamConfig, AdamState};
use crate::data::{Dataset, Source};
use crate::model::{Model, ModelConfig, ModelKind};
use crate::train::{Objective, TrainConfig, Trainer};
use anyhow::Result;
use std::time::Instant;

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

pub fn bench(kind: ModelKind, objective: Objective, epochs: usize, threads: usize, json: bool) -> Result<()> {
    let t0 = Instant::now();
    let data = Dataset::load(&Source::Mnist)?;
    let config = ModelConfig::tutorial(kind);
    let threads = if threads == 0 { crate::core::pool::available_threads() } else { threads };
    let train = TrainConfig {
        epochs,
        batch_size: 128,
        adam: AdamConfig::default(),
        beta: 1.0,
        seed: 1,
        threads,
        dataset: Source::Mnist,
        train_limit: None,
        test_limit: None,
        binarize: Default::default(),
        objective,
    };
    let model = Model::init(config.clone(), train.seed);
    let adam = AdamState::new(model.params.len());
    let mut trainer = Trainer::new(train, model, adam, 0, data);
    let setup = t0.elapsed().as_secs_f64();
    let mut epoch_secs = Vec::new();
    let mut last = None;
    for _ in 0..epochs {
        let t = Instant::now();
        let e = trainer.train_epoch(&mut |_, _, _| {})?;
        epoch_secs.push(t.elapsed().as_secs_f64());
        last = Some(e);
    }
    let t = Instant::now();
    let test = trainer.test_loss();
    let test_secs = t.elapsed().as_secs_f64();
    let steps = trainer.steps_per_epoch();
    let mean = epoch_secs.iter().sum::<f64>() / epochs as f64;
    let best = epoch_secs.iter().cloned().fold(f64::INFINITY, f64::min);
    let flops_per_epoch = 2.0 * (config.train_macs_per_example_with(objective.samples()) * steps * 128) as f64;
    let gflops = flops_per_epoch / mean / 1e9;
    let rss = peak_rss_mb();
    let train_loss = last.map_or(0.0, |e| (e.loss.bce + e.loss.kl) / e.examples as f64);
    if json {
        println!(
            "{}",
            serde_json::json!({
                "model": kind.name(),
                "objective": objective,
                "threads": threads,
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
            })
        );
    } else {
        let list: Vec<String> = epoch_secs.iter().map(|s| format!("{s:.3}")).collect();
        let plural = |n: usize, w: &str| if n == 1 { format!("1 {w}") } else { format!("{n} {w}s") };
        let (t, e) = (plural(threads, "thread"), plural(epochs, "epoch"));
        let trained = match objective {
            Objective::Elbo => String::new(),
            Objective::Iwae { k } => format!(" on IWAE-{k}"),
        };
        println!("model {kind}{trained}, {t}, {e} of {steps} steps (batch 128), SIMD {:?}", crate::core::simd::level());
        println!("seconds per epoch   {mean:.3} (best {best:.3}; each: {})", list.join(", "));
        println!("steps per second    {:.1}", steps as f64 / mean);
        println!("achieved GFLOP/s    {gflops:.1} ({:.1} GFLOP per epoch)", flops_per_epoch / 1e9);
        println!(
            "test pass           {test_secs:.3} s (10,000 images), test loss {:.3} nats/example",
            test.bce + test.kl
        );
        println!("set-up (data+init)  {setup:.3} s");
        println!("peak RSS            {rss:.1} MB");
    }
    Ok(())
}
