//! Every `vae eval` of a run, kept: `evals.jsonl` holds one report per line (with the
//! settings and time of each), `eval.json` the latest one pretty-printed. Readers such as
//! `vae serve` pick the fullest evaluation, not the last: a quick `--limit 1 --k 10` check
//! must not replace a full IWAE-5000 figure.

use crate::io::write_atomic;
use serde_json::Value;
use std::path::Path;

/// One report per line, oldest first.
pub const HISTORY_FILE: &str = "evals.jsonl";
/// The latest report (what `vae eval` wrote before the history existed).
pub const LATEST_FILE: &str = "eval.json";

/// The reports of `dir`, oldest first: `evals.jsonl`, or a lone `eval.json` of a run
/// measured before the history was kept. Unreadable lines are skipped (derived data).
pub fn load(dir: &Path) -> Vec<Value> {
    if let Ok(text) = std::fs::read_to_string(dir.join(HISTORY_FILE)) {
        return text.lines().filter_map(|l| serde_json::from_str(l).ok()).filter(Value::is_object).collect();
    }
    std::fs::read(dir.join(LATEST_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .filter(Value::is_object)
        .into_iter()
        .collect()
}

/// How full an evaluation is: on the test split first, then over more images, then with more
/// importance samples, then the later one.
fn fullness(r: &Value) -> (bool, u64, u64) {
    (r["split"] == "test", r["images"].as_u64().unwrap_or(0), r["iwae"]["k"].as_u64().unwrap_or(0))
}

/// The fullest of `reports`: on the test split, then over the most images, then with the
/// most importance samples; ties go to the latest.
pub fn fullest(reports: &[Value]) -> Option<&Value> {
    // `max_by_key` keeps the last of equal maxima: the latest.
    reports.iter().filter(|r| r.get("kind").is_none()).max_by_key(|r| fullness(r))
}

/// The latest record of `kind` (e.g. `"disentanglement"`; `vae eval`'s records have none).
pub fn latest<'a>(reports: &'a [Value], kind: &str) -> Option<&'a Value> {
    reports.iter().rev().find(|r| r["kind"] == kind)
}

/// Appends `report` to `dir`'s history and makes it the latest. Both files are rewritten
/// atomically, so a crash leaves the old history or the new one, never half a line.
///
/// # Errors
/// The I/O error of writing either file.
pub fn append(dir: &Path, report: &Value) -> std::io::Result<()> {
    let path = dir.join(HISTORY_FILE);
    let mut text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        // Keep a lone eval.json of an older `vae` as the first record.
        Err(_) => load(dir).iter().map(|r| format!("{r}\n")).collect(),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&serde_json::to_string(report).expect("JSON serialises"));
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    let pretty = serde_json::to_string_pretty(report).expect("JSON serialises");
    write_atomic(&dir.join(LATEST_FILE), format!("{pretty}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(split: &str, images: u64, k: u64, nll: f64) -> Value {
        json!({ "split": split, "images": images, "iwae": { "k": k, "nll": nll } })
    }

    #[test]
    fn the_fullest_evaluation_wins_not_the_latest() {
        let full = report("test", 10_000, 5000, 86.9);
        let quick = report("test", 1, 10, 79.9);
        let train = report("train", 60_000, 5000, 85.0);
        let reports = [full.clone(), quick.clone(), train];
        assert_eq!(fullest(&reports), Some(&full));
        // More images beat more samples; among equals the later one wins.
        let wide = report("test", 10_000, 10, 88.0);
        assert_eq!(fullest(&[quick.clone(), wide.clone()]), Some(&wide));
        let again = report("test", 10_000, 10, 88.1);
        assert_eq!(fullest(&[wide, again.clone()]), Some(&again));
        assert_eq!(fullest(&[]), None);
    }

    #[test]
    fn history_keeps_every_report_and_an_older_eval_json() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        assert!(load(d).is_empty());
        // A run measured by an older `vae`: only eval.json.
        let old = report("test", 10_000, 5000, 86.9);
        std::fs::write(d.join(LATEST_FILE), old.to_string()).unwrap();
        assert_eq!(load(d), std::slice::from_ref(&old));
        let quick = report("test", 1, 10, 79.9);
        append(d, &quick).unwrap();
        assert_eq!(load(d), [old.clone(), quick.clone()]);
        let latest: Value = serde_json::from_slice(&std::fs::read(d.join(LATEST_FILE)).unwrap()).unwrap();
        assert_eq!(latest, quick);
        assert_eq!(fullest(&load(d)), Some(&old));
        // A torn or foreign line is skipped, not fatal.
        let mut text = std::fs::read_to_string(d.join(HISTORY_FILE)).unwrap();
        text.push_str("{\"split\": \"te\n");
        std::fs::write(d.join(HISTORY_FILE), text).unwrap();
        append(d, &quick).unwrap();
        assert_eq!(load(d).len(), 3);
    }
}
