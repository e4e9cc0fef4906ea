//! Classifier-based scores of generated images: label accuracy for `cvae`, the Fréchet
//! distance of classifier features to the test set (an MNIST analogue of FID), and the
//! entropy of the predicted-label histogram (diversity; ln 10 ≈ 2.303 nats is uniform).

use super::frechet::{Gaussian, frechet_distance};
use super::report::EvalOptions;
use crate::checkpoint::{RunConfig, RunDir};
use crate::classifier::{default_dir, load_classifier};
use crate::core::{Pool, Purpose, Rng};
use crate::data::Dataset;
use crate::model::Model;
use crate::sampler::LatentSampler;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleScores {
    pub classifier: String,
    pub classifier_test_accuracy: f64,
    /// Generated images scored (the decoder's Bernoulli means of z ~ N(0, T² I)).
    pub generated: usize,
    /// T, the standard deviation of the generated images' z; 1 samples the model's prior.
    pub temperature: f32,
    /// Where their codes came from: the prior, or the fitted mixture.
    #[serde(default)]
    pub sampler: String,
    /// Fréchet distance between classifier features of the generated and the test images.
    pub frechet_distance: f64,
    /// The same between training and test images: the floor a perfect generator would reach
    /// with this many images.
    pub frechet_distance_train_vs_test: f64,
    /// Images in each of the sets both distances compare: the generated, training and test
    /// sets cut to one size (the estimate's bias depends on it), the latter two a seeded
    /// sample across the classes (0 in reports of older versions).
    #[serde(default)]
    pub frechet_images: usize,
    /// Entropy (nats) of the predicted-label histogram of the generated images.
    pub label_entropy: f64,
    /// Fraction of generated images per predicted label.
    pub label_histogram: Vec<f64>,
    /// For `cvae`: fraction of generated images classified as the label they were drawn
    /// for, per label and overall.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_accuracy: Option<Vec<f64>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_accuracy_overall: Option<f64>,
}

/// Entropy in nats of the histogram of `labels` over `classes` classes.
pub fn label_entropy(labels: &[u8], classes: usize) -> (f64, Vec<f64>) {
    let mut counts = vec![0usize; classes];
    labels.iter().for_each(|&l| counts[l as usize] += 1);
    let n = labels.len().max(1) as f64;
    let hist: Vec<f64> = counts.iter().map(|&c| c as f64 / n).collect();
    (hist.iter().filter(|&&p| p > 0.0).map(|p| -p * p.ln()).sum(), hist)
}

/// Where the classifier is looked for: `--classifier DIR`, else beside the run
/// (`runs/vae-…/../classifier-<dataset>`), then `runs/classifier-<dataset>` under the
/// current directory. The first that holds a classifier is used.
fn classifier_candidates(dir: &RunDir, config: &RunConfig, opts: &EvalOptions) -> Vec<PathBuf> {
    if let Some(c) = &opts.classifier {
        return vec![c.clone()];
    }
    let default = default_dir(&config.train.dataset);
    let beside = dir.path.parent().map(|p| p.join(default.file_name().expect("named")));
    let mut candidates: Vec<PathBuf> = beside.into_iter().collect();
    if !candidates.iter().any(|c| same_path(c, &default)) {
        candidates.push(default);
    }
    candidates
}

fn same_path(a: &Path, b: &Path) -> bool {
    a == b || matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

/// The scores, or `None` and a note saying how to train the classifier.
///
/// # Errors
/// If the classifier cannot be loaded (a missing one is no error unless `--classifier` named it:
/// the note says how to train it), was trained on other data, or its image shape or classes
/// differ from the model's; or the temperature is negative or not finite. (Fewer than two
/// test images give a note, not an error.)
pub fn sample_scores(
    dir: &RunDir,
    config: &RunConfig,
    data: &Dataset,
    model: &Model,
    pool: &Pool,
    opts: &EvalOptions,
    sampler: &LatentSampler,
) -> anyhow::Result<(Option<SampleScores>, Option<String>)> {
    if opts.generated == 0 {
        return Ok((None, Some("skipped (--generated 0)".into())));
    }
    let candidates = classifier_candidates(dir, config, opts);
    let found =
        candidates.iter().find(|c| opts.classifier.is_some() || c.join(crate::checkpoint::CONFIG_FILE).exists());
    let Some(cdir) = found.cloned() else {
        if config.model.classes < 2 {
            return Ok((
                None,
                Some("not computed: the data is unlabelled, so there is no classifier to judge samples".into()),
            ));
        }
        let searched: Vec<String> = candidates.iter().map(|c| c.display().to_string()).collect();
        let target = &candidates[0];
        return Ok((
            None,
            Some(format!(
                "not computed: no classifier in {}; train one with `vae classifier train{} --out {}`",
                searched.join(" or "),
                config.train.dataset.flags(),
                target.display()
            )),
        ));
    };
    let (run, clf) = load_classifier(&cdir).map_err(|e| anyhow::anyhow!("classifier: {e}"))?;
    if !run.dataset.same_images(&config.train.dataset) {
        anyhow::bail!(
            "the classifier in {} was trained on {} but the run on {}: its scores would judge the wrong images; \
             train one with `vae classifier train{} --out DIR` and pass --classifier DIR",
            cdir.display(),
            run.dataset,
            config.train.dataset,
            config.train.dataset.flags()
        );
    }
    let c = model.config();
    if run.classifier.shape() != c.shape() || run.classifier.classes != c.classes {
        let why = format!(
            "the classifier in {} takes {} images in {} classes but the model makes {} images of {} classes",
            cdir.display(),
            run.classifier.shape(),
            run.classifier.classes,
            c.shape(),
            c.classes
        );
        if opts.classifier.is_some() {
            anyhow::bail!("{why}; pass --classifier DIR with a classifier trained on this run's data");
        }
        // Found by default (another image size of the same folder, say): the rest of the
        // evaluation still stands, so skip only the scores it would judge.
        let fix = format!(
            "train one with `vae classifier train{} --out DIR` and pass --classifier DIR",
            config.train.dataset.flags()
        );
        if !opts.quiet {
            eprintln!("warning: sample scores skipped: {why}; {fix}");
        }
        return Ok((None, Some(format!("skipped: {why}; {fix}"))));
    }
    if (2..super::report::FEW_GENERATED).contains(&opts.generated) && !opts.quiet {
        eprintln!(
            "warning: --generated {} is too few for a meaningful Fréchet distance (biased upward at small counts); \
             use at least {} (papers use 10000)",
            opts.generated,
            super::report::FEW_GENERATED
        );
    }
    let classes = c.classes;
    let n = opts.generated;
    let mut rng = Rng::stream(opts.seed, Purpose::Eval, 1_000_000);
    let labels: Option<Vec<u8>> = c.kind.conditional().then(|| (0..n).map(|i| (i % classes) as u8).collect());
    let generated = sampler.sample(model, pool, n, labels.as_deref(), opts.temperature, &mut rng)?;
    let (pred, gen_features) = clf.predict(pool, &generated);
    // Reference: grey-level test images (the classifier's domain), and the floor.
    let m = n.min(data.test.len());
    if m < 2 {
        let why = format!("the run has {m} test images, and the Fréchet distance needs at least 2 to compare with");
        return Ok((None, Some(format!("not computed: {why}"))));
    }
    // One size for all three sets, so the two distances carry the same small-sample bias.
    let m = m.min(data.train.len());
    let pick = |split: &crate::data::Split| crate::data::subset::sample(split, m, opts.seed);
    let (_, test_features) = clf.predict(pool, &pick(&data.test).images_f32(m));
    let (_, train_features) = clf.predict(pool, &pick(&data.train).images_f32(m));
    let f = run.classifier.features();
    let test_g = Gaussian::fit(&test_features, f);
    let fd = frechet_distance(&Gaussian::fit(&gen_features[..m * f], f), &test_g);
    let floor = frechet_distance(&Gaussian::fit(&train_features, f), &test_g);
    let (entropy, hist) = label_entropy(&pred, classes);
    let (acc, overall) = match &labels {
        Some(want) => {
            let mut right = vec![0usize; classes];
            let mut total = vec![0usize; classes];
            for (p, w) in pred.iter().zip(want) {
                total[*w as usize] += 1;
                right[*w as usize] += usize::from(p == w);
            }
            let per: Vec<f64> = (0..classes).map(|d| right[d] as f64 / total[d].max(1) as f64).collect();
            let overall = right.iter().sum::<usize>() as f64 / n as f64;
            (Some(per), Some(overall))
        }
        None => (None, None),
    };
    Ok((
        Some(SampleScores {
            classifier: cdir.display().to_string(),
            classifier_test_accuracy: run.test_accuracy,
            generated: n,
            temperature: opts.temperature,
            sampler: sampler.describe(&model.config().prior),
            frechet_distance: fd,
            frechet_distance_train_vs_test: floor,
            frechet_images: m,
            label_entropy: entropy,
            label_histogram: hist,
            label_accuracy: acc,
            label_accuracy_overall: overall,
        }),
        None,
    ))
}

/// Below this test accuracy the table warns that the judge is too weak for the scores to mean
/// much (a fully trained classifier reaches 99%).
pub const RELIABLE_CLASSIFIER: f64 = 0.98;

/// " at temperature T" unless T is 1 (the prior, which the table need not mention).
fn at_temperature(t: f32) -> String {
    if t == 1.0 { String::new() } else { format!(" at temperature {t}") }
}

/// Table rows for the scores.
pub fn table(s: &SampleScores) -> String {
    let mut t = String::new();
    let mut line = |name: &str, value: String, note: &str| t.push_str(&format!("{name:<34} {value:>22}   {note}\n"));
    let judge = if s.classifier_test_accuracy < RELIABLE_CLASSIFIER {
        format!(
            "{}: below 98%, so these scores are rough (read the samples' label accuracy against the judge's own)",
            s.classifier
        )
    } else {
        s.classifier.clone()
    };
    line("classifier test accuracy", format!("{:.2}%", 100.0 * s.classifier_test_accuracy), &judge);
    line(
        "Fréchet distance (classifier)",
        format!("{:.3}", s.frechet_distance),
        &format!(
            "{} samples{}{} vs test{}; lower is better (train vs test: {:.3}){}",
            s.generated.min(if s.frechet_images > 0 { s.frechet_images } else { s.generated }),
            at_temperature(s.temperature),
            if s.sampler.is_empty() || s.sampler.starts_with("prior") {
                String::new()
            } else {
                format!(" from the {}", s.sampler)
            },
            if s.frechet_images > 0 { format!(", {} images each", s.frechet_images) } else { String::new() },
            s.frechet_distance_train_vs_test,
            if s.generated < super::report::FEW_GENERATED { "; too few samples to mean much" } else { "" }
        ),
    );
    let k = s.label_histogram.len().max(1);
    let uniform = format!("nats; ln {k} = {:.3} is uniform", (k as f64).ln());
    line("predicted-label entropy", format!("{:.3}", s.label_entropy), &uniform);
    if let (Some(per), Some(all)) = (&s.label_accuracy, s.label_accuracy_overall) {
        let note = format!("generated image{} classified as its label", at_temperature(s.temperature));
        line("label accuracy of samples", format!("{:.2}%", 100.0 * all), &note);
        let digits: Vec<String> = per.iter().enumerate().map(|(d, a)| format!("{d}:{:.1}", 100.0 * a)).collect();
        line("  per label (%)", String::new(), &digits.join(" "));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_histograms() {
        let uniform: Vec<u8> = (0..1000).map(|i| (i % 10) as u8).collect();
        assert!((label_entropy(&uniform, 10).0 - 10f64.ln()).abs() < 1e-12);
        assert_eq!(label_entropy(&[3; 50], 10).0, 0.0);
        // Half 0s, half 1s: ln 2, whatever the class count.
        assert!((label_entropy(&[0, 1, 0, 1], 2).0 - std::f64::consts::LN_2).abs() < 1e-12);
        assert!((label_entropy(&[0, 1, 0, 1], 37).0 - std::f64::consts::LN_2).abs() < 1e-12);
    }
}
