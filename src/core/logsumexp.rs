//! log Σ exp without overflow, over a slice or accumulated one value at a time.

/// log Σ exp, accumulated one value at a time without overflow (the running maximum is
/// factored out: Σ exp(v) = exp(m) · Σ exp(v − m)).
#[derive(Clone, Copy, Debug)]
pub struct LogSumExp {
    max: f64,
    sum: f64,
}

impl Default for LogSumExp {
    fn default() -> Self {
        LogSumExp { max: f64::NEG_INFINITY, sum: 0.0 }
    }
}

impl LogSumExp {
    /// Adds e^v: nothing for v = −∞ (which would otherwise give ∞ − ∞ = NaN on an empty
    /// accumulator).
    pub fn add(&mut self, v: f64) {
        if v == f64::NEG_INFINITY {
            return;
        }
        if v > self.max {
            self.sum = self.sum * (self.max - v).exp() + 1.0;
            self.max = v;
        } else {
            self.sum += (v - self.max).exp();
        }
    }

    /// log Σ exp(v) over the values added (−∞ for none).
    pub fn value(&self) -> f64 {
        self.max + self.sum.ln()
    }
}

/// log Σ exp(values), stable for any finite values.
pub fn log_sum_exp(values: &[f64]) -> f64 {
    let mut acc = LogSumExp::default();
    values.iter().for_each(|&v| acc.add(v));
    acc.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_exp_is_stable_near_plus_and_minus_ten_thousand() {
        // log(e^1e4 + e^1e4) = 1e4 + ln 2, though e^1e4 overflows f64.
        let v = log_sum_exp(&[1e4, 1e4]);
        assert!((v - (1e4 + std::f64::consts::LN_2)).abs() < 1e-9, "{v}");
        let v = log_sum_exp(&[-1e4, -1e4 - 1.0, -1e4 + 2.0]);
        let want = -1e4 + 2.0 + (1.0 + (-2f64).exp() + (-3f64).exp()).ln();
        assert!((v - want).abs() < 1e-9, "{v} vs {want}");
        // Order does not matter, and a single value is itself.
        assert!((log_sum_exp(&[-1e4 + 2.0, -1e4 - 1.0, -1e4]) - want).abs() < 1e-9);
        assert_eq!(log_sum_exp(&[-12345.5]), -12345.5);
        assert_eq!(log_sum_exp(&[]), f64::NEG_INFINITY);
        // −∞ is e⁰ = 0 of mass: alone, or first, or among others.
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY]), f64::NEG_INFINITY);
        assert_eq!(log_sum_exp(&[f64::NEG_INFINITY, 3.0]), 3.0);
        assert_eq!(log_sum_exp(&[3.0, f64::NEG_INFINITY]), 3.0);
    }
}
