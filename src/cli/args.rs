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

/// A fraction strictly between 0 and 1.
///
/// # Errors
/// A message for clap if `s` is not such a number.
pub fn fraction(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("expected a fraction between 0 and 1 (e.g. 0.1), got {s:?}")),
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
        assert!(fraction("1").is_err() && fraction("0").is_err());
    }
}
