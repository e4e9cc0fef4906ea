//! Runtime CPU-feature dispatch and vectorisable math for the element-wise kernels.
//!
//! `simd_fn!` compiles one plain-Rust loop body three times — AVX-512, AVX2+FMA and the
//! build's baseline — and picks the best at run time, so a generic `cargo build` runs as fast
//! as `-C target-cpu=native`. The body must only call `#[inline(always)]` helpers (like
//! [`exp`] and [`ln`] below) so the compiler can vectorise it under each feature set.
//!
//! `exp` and `ln` are the Cephes single-precision algorithms (S. L. Moshier, *Methods and
//! Programs for Mathematical Functions*, 1989): range reduction plus a minimax polynomial,
//! ~1 ulp over the ranges the kernels use, written with bit operations only so they vectorise.

/// Defines `fn name(args) -> ret` dispatching at run time to an AVX-512, AVX2 or baseline
/// compilation of `body`.
macro_rules! simd_fn {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident : $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            #[allow(clippy::too_many_arguments)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512dq,avx2,fma,bmi2")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v4($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn v3($($arg: $ty),*) $(-> $ret)? { body($($arg),*) }
                match $crate::core::simd::level() {
                    // SAFETY: `level()` checked that the CPU has these features.
                    $crate::core::simd::Level::V4 => return unsafe { v4($($arg),*) },
                    // SAFETY: as above.
                    $crate::core::simd::Level::V3 => return unsafe { v3($($arg),*) },
                    $crate::core::simd::Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}
pub(crate) use simd_fn;

/// The instruction-set level the element-wise kernels run at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// AVX-512 F/VL/DQ (x86-64-v4).
    V4,
    /// AVX2 + FMA (x86-64-v3).
    V3,
    /// Whatever the build targets.
    Baseline,
}

impl Level {
    /// Every level, highest first.
    pub const ALL: [Level; 3] = [Level::V4, Level::V3, Level::Baseline];

    /// Higher is wider: Baseline 0, V3 1, V4 2.
    pub fn rank(self) -> u8 {
        match self {
            Level::Baseline => 0,
            Level::V3 => 1,
            Level::V4 => 2,
        }
    }

    /// The name `VAE_SIMD` takes: `v4`, `v3` or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Level::V4 => "v4",
            Level::V3 => "v3",
            Level::Baseline => "baseline",
        }
    }

    fn from_rank(rank: u8) -> Level {
        match rank {
            2 => Level::V4,
            1 => Level::V3,
            _ => Level::Baseline,
        }
    }
}

/// The environment variable that lowers the level or picks the bf16 path:
/// `VAE_SIMD=v4|v3|baseline|avx512bf16|fp32`.
pub const OVERRIDE_VAR: &str = "VAE_SIMD";

/// The bf16 paths `VAE_SIMD` can force (`--precision bf16`'s products).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bf16Path {
    /// AMX tiles (`tdpbf16ps`) for the linear layers' products and the convolutions over
    /// 32·i channels, `vdpbf16ps` for the rest:
    /// opt-in until a session on an AMX machine has run its tests there
    /// (`core::bf16::amx`).
    Amx,
    /// `vdpbf16ps` (AVX512_BF16), at SIMD level v4.
    Avx512Bf16,
    /// No bf16 instructions: `--precision bf16` falls back to f32 (and the bf16 products,
    /// called directly, run their portable loop).
    Fp32,
}

impl Bf16Path {
    /// The name `VAE_SIMD` takes.
    pub fn name(self) -> &'static str {
        match self {
            Bf16Path::Amx => "amx",
            Bf16Path::Avx512Bf16 => "avx512bf16",
            Bf16Path::Fp32 => "fp32",
        }
    }
}

/// What is wrong with `VAE_SIMD`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OverrideError {
    #[error(
        "VAE_SIMD={0:?} is not a SIMD level or bf16 path: set it to v4, v3, baseline, amx, avx512bf16 or fp32, or unset it"
    )]
    Unknown(String),
    #[error("VAE_SIMD={asked} asks for more than this CPU has ({has}): set it to {has} or lower, or unset it")]
    Unsupported { asked: &'static str, has: &'static str },
    #[error("VAE_SIMD=avx512bf16 asks for vdpbf16ps, which this CPU lacks: set it to fp32, or unset it")]
    NoBf16,
    #[error(
        "VAE_SIMD=amx asks for AMX tiles (tdpbf16ps, Intel Xeon from Sapphire Rapids on), which this CPU lacks: set it to avx512bf16 or fp32, or unset it"
    )]
    NoAmx,
}

/// `VAE_SIMD`'s value, trimmed and lower-cased (`None` when unset or empty).
fn override_value() -> Option<String> {
    let value = std::env::var_os(OVERRIDE_VAR)?.to_string_lossy().trim().to_ascii_lowercase();
    (!value.is_empty()).then_some(value)
}

/// The bf16 path `VAE_SIMD` asks for (`None` when it names a SIMD level, or is unset),
/// checked against the CPU.
///
/// # Errors
/// `amx` or `avx512bf16` on a CPU without it.
pub fn bf16_requested() -> Result<Option<Bf16Path>, OverrideError> {
    override_value().map_or(Ok(None), |value| bf16_requested_of(&value))
}

/// [`bf16_requested`] for `VAE_SIMD=value`.
fn bf16_requested_of(value: &str) -> Result<Option<Bf16Path>, OverrideError> {
    let path = [Bf16Path::Amx, Bf16Path::Avx512Bf16, Bf16Path::Fp32].into_iter().find(|p| p.name() == value);
    match path {
        Some(Bf16Path::Amx) if !(detected() == Level::V4 && has_avx512_bf16() && super::cpu::cpu().amx_bf16) => {
            Err(OverrideError::NoAmx)
        }
        Some(Bf16Path::Avx512Bf16) if !(detected() == Level::V4 && has_avx512_bf16()) => Err(OverrideError::NoBf16),
        other => Ok(other),
    }
}

/// Whether the CPU has `vdpbf16ps`.
fn has_avx512_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The level `VAE_SIMD` asks for (`None` when unset, empty, or `fp32`; `avx512bf16` means
/// v4), checked against what the CPU has ([`detected`]).
///
/// # Errors
/// An unknown name, a level above the CPU's, or a bf16 path it lacks ([`bf16_requested`]).
pub fn requested() -> Result<Option<Level>, OverrideError> {
    let Some(value) = override_value() else { return Ok(None) };
    match bf16_requested()? {
        Some(Bf16Path::Avx512Bf16) => return Ok(Some(Level::V4)),
        Some(_) => return Ok(None),
        None => {}
    }
    let asked = Level::ALL.into_iter().find(|l| l.name() == value).ok_or(OverrideError::Unknown(value))?;
    let has = detected();
    if asked.rank() > has.rank() {
        return Err(OverrideError::Unsupported { asked: asked.name(), has: has.name() });
    }
    Ok(Some(asked))
}

/// The best level this CPU (and OS) supports.
pub fn detected() -> Level {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512vl")
            && std::arch::is_x86_feature_detected!("avx512dq")
            && std::arch::is_x86_feature_detected!("bmi2")
        {
            return Level::V4;
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            return Level::V3;
        }
    }
    Level::Baseline
}

/// The level the kernels run at: [`detected`], lowered by `VAE_SIMD` when it names a lower
/// one (an invalid `VAE_SIMD` is ignored here; the `vae` binary refuses it with
/// [`requested`]'s error). Read once per process, then one relaxed load.
#[inline]
pub fn level() -> Level {
    // 0: not yet known; otherwise rank + 1.
    static LEVEL: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(0);
    match LEVEL.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {
            let level = requested().ok().flatten().unwrap_or_else(detected);
            LEVEL.store(level.rank() + 1, std::sync::atomic::Ordering::Relaxed);
            level
        }
        r => Level::from_rank(r - 1),
    }
}

/// e^x for f32, Cephes `expf`: x = n·ln2 + r, |r| ≤ ln2/2, e^r by a degree-6 polynomial,
/// scaled by 2^n through the exponent bits. Inputs are clamped to [-87.3, 88.3] (results
/// saturate at ~1e-38 and ~2e38 instead of flushing to 0 / ∞).
#[inline(always)]
#[allow(clippy::excessive_precision)] // Cephes' coefficients, kept as published
pub fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.3, 88.3);
    // Round to nearest with the 1.5·2^23 trick (vectorises on every x86 level).
    const ROUNDER: f32 = 12_582_912.0;
    let n = (x * LOG2E + ROUNDER) - ROUNDER;
    let r = x - n * LN2_HI - n * LN2_LO;
    let r2 = r * r;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let er = p * r2 + r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    er * scale
}

/// ln x for finite x > 0, Cephes `logf`: x = m·2^e with m in [√½, √2), ln m by a degree-9
/// polynomial in (m − 1).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    const SQRT_HALF: f32 = std::f32::consts::FRAC_1_SQRT_2;
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 126;
    // Mantissa in [0.5, 1).
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f00_0000);
    let small = m < SQRT_HALF;
    e -= small as i32;
    m = if small { m + m - 1.0 } else { m - 1.0 };
    let z = m * m;
    let mut y = 7.037_683_6e-2_f32;
    y = y * m - 1.151_461e-1;
    y = y * m + 1.167_699_9e-1;
    y = y * m - 1.242_014_1e-1;
    y = y * m + 1.424_932_3e-1;
    y = y * m - 1.666_805_8e-1;
    y = y * m + 2.000_071_4e-1;
    y = y * m - 2.499_999_4e-1;
    y = y * m + 3.333_333e-1;
    y *= m * z;
    let ef = e as f32;
    y += -2.121_944_4e-4 * ef;
    y += -0.5 * z;
    m + y + 0.693_359_4 * ef
}

/// ln(1 + u) for u ≥ 0, accurate for tiny u (Goldberg's trick: the rounding error of 1 + u
/// cancels in ln(w)·u/(w − 1)).
#[inline(always)]
pub fn ln_1p(u: f32) -> f32 {
    let w = 1.0 + u;
    let d = w - 1.0;
    if d == 0.0 { u } else { ln(w) * (u / d) }
}

/// Returns (softplus(l), sigmoid(l)) = (ln(1 + e^l), 1 / (1 + e^−l)) sharing one exp, stable
/// for any finite l: softplus(l) = max(l, 0) + ln(1 + e^−|l|).
#[inline(always)]
pub fn softplus_sigmoid(l: f32) -> (f32, f32) {
    let e = exp(-l.abs());
    let softplus = l.max(0.0) + ln_1p(e);
    let inv = 1.0 / (1.0 + e);
    let sigmoid = if l >= 0.0 { inv } else { e * inv };
    (softplus, sigmoid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ulps(a: f32, b: f32) -> u32 {
        (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs() as u32
    }

    #[test]
    fn exp_matches_std_within_two_ulps() {
        let mut x = -87.0f32;
        while x < 88.0 {
            let (got, want) = (exp(x), (x as f64).exp() as f32);
            assert!(ulps(got, want) <= 2, "exp({x}) = {got}, want {want}");
            x += 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
    }

    #[test]
    fn ln_matches_std_within_two_ulps() {
        let mut x = 1e-30f32;
        while x < 1e30 {
            let (got, want) = (ln(x), (x as f64).ln() as f32);
            assert!(ulps(got, want) <= 2 || (got - want).abs() < 1e-7, "ln({x}) = {got}, want {want}");
            x *= 1.0137;
        }
        assert_eq!(ln(1.0), 0.0);
    }

    #[test]
    fn softplus_and_sigmoid_are_stable_and_exact_at_known_points() {
        let (sp, sg) = softplus_sigmoid(0.0);
        assert!((sp - std::f32::consts::LN_2).abs() < 1e-7);
        assert_eq!(sg, 0.5);
        for l in [-80.0f32, -20.0, -3.0, -1e-4, 1e-4, 3.0, 20.0, 80.0] {
            let l64 = l as f64;
            let want_sp = l64.max(0.0) + (-l64.abs()).exp().ln_1p();
            let want_sg = 1.0 / (1.0 + (-(l as f64)).exp());
            let (sp, sg) = softplus_sigmoid(l);
            assert!(((sp as f64 - want_sp) / want_sp).abs() < 3e-7, "softplus({l}) = {sp}, want {want_sp}");
            assert!(((sg as f64 - want_sg) / want_sg).abs() < 3e-7, "sigmoid({l})");
        }
    }

    #[test]
    fn ln_1p_keeps_tiny_arguments() {
        assert_eq!(ln_1p(1e-10), 1e-10);
        assert!((ln_1p(1e-3) as f64 - (1e-3f64).ln_1p()).abs() < 1e-10);
    }

    /// `VAE_SIMD=amx` is taken where the CPU has AMX-BF16 (beside AVX512_BF16, which every
    /// AMX Xeon has), and refused with the fix elsewhere; the names are exact.
    #[test]
    fn the_amx_override_is_taken_only_with_amx() {
        let has = detected() == Level::V4 && has_avx512_bf16() && super::super::cpu::cpu().amx_bf16;
        match bf16_requested_of("amx") {
            Ok(Some(Bf16Path::Amx)) => assert!(has, "amx taken on a CPU without it"),
            Err(e) => {
                assert!(!has, "amx refused on a CPU with it: {e}");
                assert_eq!(e, OverrideError::NoAmx);
                assert!(e.to_string().contains("set it to avx512bf16 or fp32, or unset it"), "{e}");
            }
            other => panic!("VAE_SIMD=amx gave {other:?}"),
        }
        assert_eq!(bf16_requested_of("fp32"), Ok(Some(Bf16Path::Fp32)));
        assert_eq!(bf16_requested_of("v3"), Ok(None));
    }

    #[test]
    fn the_override_sets_the_level() {
        // Under `kernel_tests_pass_at_every_lower_simd_level` this runs with VAE_SIMD set.
        match requested() {
            Ok(Some(asked)) => assert_eq!(level(), asked),
            Ok(None) => assert_eq!(level(), detected()),
            Err(e) => panic!("{e}"),
        }
        assert!(level().rank() <= detected().rank());
    }

    /// Runs this test binary's kernel tests (`core::` and `nn::`, the layers' gradient checks)
    /// again at every level below the CPU's, each in a child process with `VAE_SIMD` set, so
    /// the AVX2 and portable compilations of the element-wise kernels and the portable
    /// convolution products are tested on an AVX-512 machine too. (`gemm`'s own products
    /// keep its own dispatch.)
    #[test]
    fn kernel_tests_pass_at_every_lower_simd_level() {
        if std::env::var_os(OVERRIDE_VAR).is_some() {
            return; // this is a child run
        }
        let exe = std::env::current_exe().expect("the test binary's path");
        let lower = Level::ALL.into_iter().filter(|l| l.rank() < detected().rank()).map(Level::name);
        // With vdpbf16ps: also without it (the bf16 products' portable loop in every test);
        // with AMX and `VAE_TEST_AMX=1`, also on its tiles (`bf16::amx`'s tests say why asked).
        let no_bf16 = (detected() == Level::V4 && has_avx512_bf16()).then_some(Bf16Path::Fp32.name());
        let amx_asked = std::env::var_os("VAE_TEST_AMX").is_some();
        let amx = (amx_asked && bf16_requested_of("amx") == Ok(Some(Bf16Path::Amx))).then_some(Bf16Path::Amx.name());
        for name in lower.chain(no_bf16).chain(amx) {
            let out = std::process::Command::new(&exe)
                .args(["core::", "nn::", "--skip", "kernel_tests_pass_at_every_lower_simd_level"])
                .args(["--test-threads", "2"])
                .env(OVERRIDE_VAR, name)
                .output()
                .expect("the test binary runs");
            let text = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "VAE_SIMD={name}: kernel tests failed:\n{text}");
            let passed: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("test result: ok. "))
                .and_then(|l| l.split(' ').next()?.parse().ok())
                .unwrap_or(0);
            assert!(passed >= 40, "VAE_SIMD={name}: only {passed} tests ran:\n{text}");
            println!("VAE_SIMD={name}: {passed} kernel tests passed");
        }
    }

    #[test]
    fn dispatch_runs_on_this_cpu() {
        simd_fn! {
            fn add_all(xs: &[f32]) -> f32 { xs.iter().sum() }
        }
        assert_eq!(add_all(&[1.0, 2.0, 3.5]), 6.5);
    }
}
