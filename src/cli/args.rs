//! Value parsers for numeric flags, so every out-of-range value gets the same kind of error
//! from clap, before any work: `error: invalid value '0' for '--epochs <N>': 0 is not in
//! 1..=100000`. Each flag's help states its range.

/// Most epochs any command trains for.
pub const MAX_EPOCHS: usize = crate::schedule::MAX_SPAN;
/// Largest `--limit`, `--train-limit` or `--test-limit` (more than any dataset holds).
pub const MAX_LIMIT: usize = 1_000_000_000;

/// A whole number in `min..=max` (as `usize`), with clap's wording for a value outside it.
pub fn count(min: usize, max: usize) -> impl Fn(&str) -> Result<usize, String> + Clone + Send + Sync + 'static {
    move |s: &str| {
        let n: usize = s.trim().parse().map_err(|_| format!("expected a whole number, got {s:?}"))?;
        if (min..=max).contains(&n) { Ok(n) } else { Err(format!("{n} is not in {min}..={max}")) }
    }
}

/// A finite number greater than 0.
///
/// # Errors
/// A message for clap if `s` is not such a number.
pub fn positive(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("expected a number greater than 0, got {s:?}")),
    }
}

/// A finite number of at least 0.
///
/// # Errors
/// A message for clap if `s` is not such a number.
pub fn non_negative(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a number of at least 0, got {s:?}")),
    }
}

/// A fraction from 0 up to (not including) 1.
///
/// # Errors
/// A message for clap if `s` is not such a number.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if (0.0..1.0).contains(&v) => Ok(v),
        _ => Err(format!("expected a fraction from 0 up to 1 (e.g. 0.1; 0 holds nothing out), got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_their_range_are_named_with_the_range() {
        let epochs = count(1, 100_000);
        assert_eq!(epochs("50"), Ok(50));
        assert_eq!(epochs("0"), Err("0 is not in 1..=100000".into()));
        assert_eq!(epochs("100001"), Err("100001 is not in 1..=100000".into()));
        assert_eq!(epochs("-1"), Err("expected a whole number, got \"-1\"".into()));
        assert_eq!(positive("1e-3"), Ok(1e-3));
        assert!(positive("0").is_err() && positive("nan").is_err() && positive("inf").is_err());
        assert_eq!(non_negative("0"), Ok(0.0));
        assert!(non_negative("-0.5").is_err());
        assert_eq!(fraction("0.25"), Ok(0.25));
        assert_eq!(fraction("0"), Ok(0.0));
        assert!(fraction("1").is_err() && fraction("-0.1").is_err() && fraction("nan").is_err());
    }
}

/// `--data-dir` on the commands that read a trained run's images.
#[derive(clap::Args, Debug, Default, Clone)]
pub struct MovedData {
    /// Where the run's image folder is now, if it moved since training: it must hold the same
    /// images (checked against the files the run recorded) [default: the folder in the run's
    /// config.json]
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<std::path::PathBuf>,
}
