//! `vae fit-sampler` and `--sampler gmm` in sample, eval and serve (ex-post density
//! estimation, Ghosh et al. 2020).

mod common;

use common::*;
use vae::sampler::{FittedGmm, GMM_FILE, SamplerName};

fn fitted(run: &std::path::Path) -> FittedGmm {
    serde_json::from_str(&std::fs::read_to_string(run.join(GMM_FILE)).unwrap()).unwrap()
}

#[test]
fn a_vae_gets_one_mixture_that_sample_eval_and_serve_use() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train(&run, &["--epochs", "2", "--fit-sampler", "0"]);
    let r = run.to_str().unwrap();
    assert!(!run.join(GMM_FILE).exists(), "--fit-sampler 0 fits none");
    fails(&["sample", r, "--sampler", "gmm"], &["has no fitted sampler", "vae fit-sampler"]);
    let out = vae().args(["fit-sampler", r, "--gmm", "3"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("3-component Gaussian mixture fitted to μ of q(z|x) of 512 training images"), "{stdout}");
    let f = fitted(&run);
    assert_eq!((f.components, f.epoch, f.mixtures.len()), (3, 2, 1));
    let m = &f.mixtures[0];
    assert_eq!((m.label, m.codes, m.gmm.dim), (None, 512, 20));
    // The mixture fits the codes it was fitted to better than N(0, I) does.
    assert!(m.log_density > m.prior_log_density, "{} vs {}", m.log_density, m.prior_log_density);
    vae().args(["sample", r, "--sampler", "gmm", "-n", "20"]).assert().success();
    assert_eq!(png_size(&run.join("samples/sample-seed0-gmm.png")).0 % 10, 2);
    // The same seed from the prior and from the mixture gives other images.
    vae().args(["sample", r, "-n", "20", "--sampler", "prior", "-o"]).arg(tmp.path().join("p.npy")).assert().success();
    vae().args(["sample", r, "-n", "20", "--sampler", "gmm", "-o"]).arg(tmp.path().join("g.npy")).assert().success();
    assert_ne!(std::fs::read(tmp.path().join("p.npy")).unwrap(), std::fs::read(tmp.path().join("g.npy")).unwrap());
    // eval records the sampler.
    let report = tmp.path().join("eval.json");
    vae()
        .args(["eval", r, "--k", "2", "--limit", "20", "--generated", "0", "--sampler", "gmm", "-o"])
        .arg(&report)
        .assert()
        .success();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["settings"]["sampler"], "gmm");
    // serve: /api/model names it, /api/sample draws from it.
    let addr = start_server_with(&run, SamplerName::Gmm);
    let model = http::get(addr, "/api/model").json();
    assert!(
        model["sampler"].as_str().unwrap().starts_with("fitted Gaussian mixture (3 components, epoch 2)"),
        "{}",
        model["sampler"]
    );
    let resp = http::get(addr, "/api/sample?n=4&temperature=0.5");
    assert_eq!(resp.status, 200);
    // Training further without fitting makes the mixture stale: refused, naming the fix.
    vae().args(["train", "--resume", r, "--epochs", "3", "-q", "--fit-sampler", "0"]).assert().success();
    fails(&["sample", r, "--sampler", "gmm"], &["fitted to the weights of epoch 2", "now at epoch 3", "fit-sampler"]);
    std::fs::write(run.join(GMM_FILE), b"{\"components\": 3").unwrap();
    fails(&["sample", r, "--sampler", "gmm"], &["sampler-gmm.json is corrupt", "fit-sampler"]);
}

#[test]
fn a_cvae_gets_one_mixture_per_label_and_bad_requests_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("cvae");
    train(&run, &["--epochs", "1", "--model", "cvae", "--fit-sampler", "0"]);
    let r = run.to_str().unwrap();
    vae().args(["fit-sampler", r, "--gmm", "2", "-q"]).assert().success();
    let f = fitted(&run);
    assert_eq!(f.mixtures.len(), 10);
    for (y, m) in f.mixtures.iter().enumerate() {
        assert_eq!(m.label, Some(y as u8));
    }
    assert_eq!(f.mixtures.iter().map(|m| m.codes).sum::<usize>(), 512);
    vae().args(["sample", r, "--sampler", "gmm", "--label", "7", "-n", "10"]).assert().success();
    fails(&["fit-sampler", r, "--gmm", "0"], &["--gmm <K>", "0 is not in 1..=100"]);
    // 512 images over 10 labels, ~51 codes each, 20 dimensions: one component per 40 codes.
    let out = vae().args(["fit-sampler", r, "--gmm", "100"]).assert().success();
    let stderr = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(stderr.contains("warning: too few codes for 100 components (one per 40 codes) in: 0 ("), "{stderr}");
    for m in &fitted(&run).mixtures {
        assert_eq!(m.gmm.components(), (m.codes / 40).max(1), "label {:?}, {} codes", m.label, m.codes);
    }
    let ae = tmp.path().join("ae");
    train(&ae, &["--epochs", "1", "--model", "ae"]);
    fails(&["fit-sampler", ae.to_str().unwrap()], &["holds an ae", "needs no sampler"]);
}

/// A VampPrior run: its pseudo-inputs saved under a readable name, resumed exactly,
/// evaluated with the mixture's density and sampled from the mixture; misuse refused.
#[test]
fn a_vamp_prior_run_trains_resumes_evaluates_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let (whole, split) = (tmp.path().join("whole"), tmp.path().join("split"));
    // With a KL warm-up (β 1/3, then 2/3 in the two epochs), which the resumed half continues.
    let flags = ["--prior", "vamp", "--pseudo-inputs", "10", "--kl-warmup", "3"];
    train(&whole, &[&flags[..], &["--epochs", "2"]].concat());
    train(&split, &[&flags[..], &["--epochs", "1"]].concat());
    vae().args(["train", "--resume"]).arg(&split).args(["--epochs", "2", "-q"]).assert().success();
    let bytes = std::fs::read(whole.join("model.safetensors")).unwrap();
    assert_eq!(bytes, std::fs::read(split.join("model.safetensors")).unwrap());
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert_eq!(st.tensor("prior.pseudo_inputs").unwrap().shape(), &[10, 1, 28, 28]);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["model"]["prior"], serde_json::json!({ "kind": "vamp", "pseudo_inputs": 10 }));
    let betas: Vec<f64> = common::metrics(&whole).iter().map(|m| m["beta"].as_f64().unwrap()).collect();
    assert!((betas[0] - 1.0 / 3.0).abs() < 1e-6 && (betas[1] - 2.0 / 3.0).abs() < 1e-6, "{betas:?}");
    let w = whole.to_str().unwrap();
    let out = vae().args(["eval", w, "--k", "20", "--limit", "50", "--generated", "0"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("VampPrior of 10 pseudo-inputs"), "{stdout}");
    // Its KL is a Monte Carlo estimate: said so, with its standard error over the draws.
    let kl_line = stdout.lines().find(|l| l.contains("KL(q(z|x)")).unwrap();
    assert!(kl_line.contains("estimated") && kl_line.contains(" ± ") && !kl_line.contains("analytic"), "{kl_line}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(whole.join("eval.json")).unwrap()).unwrap();
    assert!(report["elbo"]["kl_se"].as_f64().unwrap() > 0.0, "{}", report["elbo"]);
    // IWAE-20 is a tighter bound than the ELBO, both finite.
    let (elbo, iwae) =
        (report["elbo"]["elbo"]["mean"].as_f64().unwrap(), report["iwae"]["bound"]["mean"].as_f64().unwrap());
    assert!(elbo.is_finite() && iwae > elbo, "ELBO {elbo}, IWAE {iwae}");
    vae().args(["sample", w, "-n", "10"]).assert().success();
    let o = tmp.path().join("x");
    let o = o.to_str().unwrap();
    fails(&["train", "--out", o, "--prior", "vamp", "--model", "cvae"], &["--prior vamp needs --model vae"]);
    fails(&["train", "--out", o, "--pseudo-inputs", "5"], &["--pseudo-inputs sets the components of --prior vamp"]);
    fails(
        &["train", "--out", o, "--prior", "vamp", "--pseudo-inputs", "0"],
        &["--pseudo-inputs <K>", "0 is not in 1..=4096"],
    );
    fails(&["train", "--resume", w, "--prior", "standard"], &["--prior cannot be changed when resuming"]);
}

/// A learned Gaussian mixture prior: its means and log-variances under readable names, the
/// evaluation's KL named as an estimate of it, samples from it; misuse refused.
#[test]
fn a_mixture_of_gaussians_prior_run_trains_evaluates_and_samples() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("mog");
    train(&run, &["--prior", "mog", "--components", "4", "--epochs", "1"]);
    let st = std::fs::read(run.join("model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&st).unwrap();
    assert_eq!(st.tensor("prior.means").unwrap().shape(), &[4, 20]);
    assert_eq!(st.tensor("prior.logvars").unwrap().shape(), &[4, 20]);
    let r = run.to_str().unwrap();
    let out = vae().args(["eval", r, "--k", "10", "--limit", "50", "--generated", "0"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    let kl_line = stdout.lines().find(|l| l.contains("KL(q(z|x)")).unwrap();
    assert!(kl_line.contains("estimated: mixture of 4 Gaussians") && kl_line.contains(" ± "), "{kl_line}");
    let out = vae().args(["sample", r, "-n", "4", "--sampler", "prior"]).assert().success();
    let stdout = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(stdout.contains("prior: mixture of 4 Gaussians"), "{stdout}");
    let o = tmp.path().join("x");
    let o = o.to_str().unwrap();
    fails(&["train", "--out", o, "--prior", "mog", "--model", "ae"], &["--prior mog needs --model vae"]);
    fails(&["train", "--out", o, "--components", "5"], &["--components sets the Gaussians of --prior mog"]);
    fails(&["train", "--out", o, "--prior", "vamp", "--components", "5"], &["add --prior mog"]);
    fails(&["train", "--resume", r, "--components", "3"], &["--components cannot be changed when resuming"]);
}

/// The default path: `vae train` fits the mixture at its end (and after each resumed
/// stretch), redraws the last grid from it, and `sample`, `eval` and `serve` use it unless
/// told `--sampler prior`; a stale one falls back to the prior.
#[test]
fn training_fits_the_sampler_that_sample_eval_and_serve_use_by_default() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let stdout = train(&run, &["--epochs", "2"]);
    let r = run.to_str().unwrap();
    assert!(
        stdout.contains("sampler: a Gaussian mixture of up to 10 components fitted to 512 training codes"),
        "{stdout}"
    );
    assert!(stdout.contains("epoch 2's grid redrawn from it"), "{stdout}");
    assert!(stdout.contains(&format!("sample {r}` draws new images from the fitted mixture")), "{stdout}");
    let f = fitted(&run);
    // 512 codes in 20 dimensions: 10 components need 400.
    assert_eq!((f.components, f.epoch, f.mixtures[0].codes, f.mixtures[0].gmm.components()), (10, 2, 512, 10));
    let sample = |extra: &[&str]| {
        let out = vae().args(["sample", r, "-n", "20"]).args(extra).assert().success();
        String::from_utf8_lossy(&out.get_output().stdout).into_owned()
    };
    assert!(sample(&[]).contains("codes from the fitted Gaussian mixture (10 components, epoch 2)"));
    assert!(sample(&["--sampler", "prior"]).contains("codes from the prior N(0, I)"));
    assert!(run.join("samples/sample-seed0.png").is_file() && run.join("samples/sample-seed0-prior.png").is_file());
    assert_ne!(
        std::fs::read(run.join("samples/sample-seed0.png")).unwrap(),
        std::fs::read(run.join("samples/sample-seed0-prior.png")).unwrap()
    );
    // eval records what it used.
    let report = tmp.path().join("eval.json");
    vae().args(["eval", r, "--k", "2", "--limit", "20", "--generated", "20", "-o"]).arg(&report).assert().success();
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert_eq!(json["settings"]["sampler"], "gmm");
    let addr = start_server_with(&run, SamplerName::Auto);
    assert!(http::get(addr, "/api/model").json()["sampler"].as_str().unwrap().starts_with("fitted Gaussian mixture"));
    // Resuming refits it to the new weights...
    vae().args(["train", "--resume", r, "--epochs", "3", "-q"]).assert().success();
    assert_eq!(fitted(&run).epoch, 3);
    // ...unless told not to: then the stale mixture is passed over for the prior.
    vae().args(["train", "--resume", r, "--epochs", "4", "-q", "--fit-sampler", "0"]).assert().success();
    assert!(sample(&[]).contains("codes from the prior N(0, I)"));
    fails(&["sample", r, "--sampler", "gmm"], &["fitted to the weights of epoch 3", "now at epoch 4"]);
    // An ae is never sampled: nothing is fitted.
    let ae = tmp.path().join("ae");
    let stdout = train(&ae, &["--epochs", "1", "--model", "ae"]);
    assert!(!stdout.contains("sampler:") && !ae.join(GMM_FILE).exists(), "{stdout}");
}
