//! What CPU this is, read once from CPUID, and the kernel parameters that follow from it.
//!
//! [`Cpu`] holds the model name, vendor, family and model, the SIMD features the kernels can
//! use (and the AMX/bf16 ones a later issue will), and the per-core cache sizes from CPUID's
//! deterministic cache parameters (leaf 4 on Intel, leaf 0x8000_001D on AMD: the same layout).
//! `vae bench` prints it so a figure always says where it was measured.
//!
//! [`Tuning`] derives the block sizes of the kernels that are not `gemm`'s from those caches
//! (`gemm` reads CPUID itself and sizes its own blocks): what was a constant fitted to one
//! Zen 5 core is now the same fraction of whatever core runs the program.

use std::sync::OnceLock;

/// Data and unified cache sizes in bytes (0 where CPUID does not say).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Caches {
    /// Level-1 data cache of one core.
    pub l1d: usize,
    /// Level-2 cache of one core.
    pub l2: usize,
    /// Level-3 cache (shared by `l3_sharing` logical processors).
    pub l3: usize,
    /// Logical processors sharing the L3, as CPUID reports it (a virtual machine may see
    /// the host's whole L3 with only a few of its cores).
    pub l3_sharing: usize,
}

/// The CPU the process runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Cpu {
    /// The brand string (CPUID 0x8000_0002–4), e.g. "AMD EPYC 9B14" or "Intel(R) Xeon(R) …".
    pub model_name: String,
    /// "GenuineIntel", "AuthenticAMD", … (empty off x86-64).
    pub vendor: String,
    /// Display family and model (family 25 = Zen 3/4, 26 = Zen 5; Intel's are 6 and ≥ 143
    /// for Sapphire Rapids onwards).
    pub family: u32,
    pub model: u32,
    /// AVX-512 F/VL/DQ/BW present.
    pub avx512: bool,
    /// `vdpbf16ps` (AVX512_BF16).
    pub avx512_bf16: bool,
    /// AVX512_FP16.
    pub avx512_fp16: bool,
    /// AMX tiles with bf16 products (`tdpbf16ps`).
    pub amx_bf16: bool,
    /// AVX2 and FMA.
    pub avx2_fma: bool,
    pub caches: Caches,
}

impl Cpu {
    /// The width of one AVX-512 FMA in the core's datapath, in bits: Zen 4 (family 25)
    /// splits a 512-bit operation into two 256-bit halves; Zen 5 and Intel's AVX-512 cores
    /// run it whole. 256 for AVX2 machines, 128 otherwise.
    pub fn fma_bits(&self) -> u32 {
        if self.avx512 {
            if self.vendor == "AuthenticAMD" && self.family < 26 { 256 } else { 512 }
        } else if self.avx2_fma {
            256
        } else {
            128
        }
    }

    /// One line for reports: "AMD EPYC 9B14 (family 25 model 17), SIMD V4, AVX-512 on a
    /// 256-bit datapath, avx512_bf16; L1d 32 KB, L2 1 MB, L3 32 MB".
    pub fn summary(&self) -> String {
        let mut extras = Vec::new();
        if self.avx512 {
            extras.push(format!("AVX-512 on a {}-bit datapath", self.fma_bits()));
        }
        for (on, name) in
            [(self.avx512_bf16, "avx512_bf16"), (self.avx512_fp16, "avx512_fp16"), (self.amx_bf16, "amx_bf16")]
        {
            if on {
                extras.push(name.to_string());
            }
        }
        let c = &self.caches;
        let name = if self.model_name.is_empty() { "unknown CPU" } else { &self.model_name };
        let mut s = format!("{name} (family {} model {}), SIMD {:?}", self.family, self.model, super::simd::level());
        for e in extras {
            s += ", ";
            s += &e;
        }
        format!("{s}; L1d {}, L2 {}, L3 {}", bytes(c.l1d), bytes(c.l2), bytes(c.l3))
    }
}

/// "48 KB", "2 MB", "?" for 0.
fn bytes(n: usize) -> String {
    match n {
        0 => "?".into(),
        n if n >= 1 << 20 && n.is_multiple_of(1 << 20) => format!("{} MB", n >> 20),
        n if n >= 1 << 20 => format!("{:.1} MB", n as f64 / (1 << 20) as f64),
        n => format!("{} KB", n >> 10),
    }
}

/// This CPU, detected once.
pub fn cpu() -> &'static Cpu {
    static CPU: OnceLock<Cpu> = OnceLock::new();
    CPU.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn cpuid(leaf: u32, sub: u32) -> [u32; 4] {
    // CPUID exists on every x86-64 CPU; leaves above the maximum return zeros or the
    // highest basic leaf's values, so the callers check the maxima first.
    let r = std::arch::x86_64::__cpuid_count(leaf, sub);
    [r.eax, r.ebx, r.ecx, r.edx]
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Cpu {
    let [max, b, c, d] = cpuid(0, 0);
    let vendor: String = [b, d, c].iter().flat_map(|r| r.to_le_bytes()).map(char::from).collect();
    let [max_ext, ..] = cpuid(0x8000_0000, 0);
    let model_name = if max_ext >= 0x8000_0004 {
        let raw: Vec<u8> =
            (0x8000_0002..=0x8000_0004u32).flat_map(|l| cpuid(l, 0)).flat_map(u32::to_le_bytes).collect();
        String::from_utf8_lossy(&raw).trim_matches(char::from(0)).trim().to_string()
    } else {
        String::new()
    };
    let [sig, ..] = cpuid(1, 0);
    let base_family = (sig >> 8) & 0xf;
    let family = if base_family == 0xf { base_family + ((sig >> 20) & 0xff) } else { base_family };
    let model = if base_family == 0x6 || base_family == 0xf {
        ((sig >> 16) & 0xf) << 4 | ((sig >> 4) & 0xf)
    } else {
        (sig >> 4) & 0xf
    };
    let (leaf7, leaf7_1) = if max >= 7 { (cpuid(7, 0), cpuid(7, 1)) } else { ([0; 4], [0; 4]) };
    let bit = |r: u32, n: u32| r >> n & 1 == 1;
    use std::arch::is_x86_feature_detected as has;
    let avx512 = has!("avx512f") && has!("avx512vl") && has!("avx512dq") && has!("avx512bw");
    // The OS must also save the AVX-512 state for these to be usable: `has!` checked that
    // for the AVX-512 bits; AMX needs its own permission (a later issue asks for it).
    Cpu {
        model_name,
        family,
        model,
        avx512,
        avx512_bf16: avx512 && bit(leaf7_1[0], 5),
        avx512_fp16: avx512 && bit(leaf7[3], 23),
        amx_bf16: bit(leaf7[3], 22) && bit(leaf7[3], 24),
        avx2_fma: has!("avx2") && has!("fma"),
        caches: caches(&vendor, max),
        vendor,
    }
}

/// Per-core data caches from the deterministic cache parameters (leaf 4, or AMD's
/// 0x8000_001D with the same layout): size = ways · partitions · line · sets.
#[cfg(target_arch = "x86_64")]
fn caches(vendor: &str, max: u32) -> Caches {
    let leaf = if vendor == "AuthenticAMD" || vendor == "HygonGenuine" {
        let [max_ext, ..] = cpuid(0x8000_0000, 0);
        let [_, _, ecx, _] = if max_ext >= 0x8000_0001 { cpuid(0x8000_0001, 0) } else { [0; 4] };
        // TOPOEXT (bit 22) says leaf 0x8000_001D exists.
        if max_ext >= 0x8000_001d && ecx >> 22 & 1 == 1 { 0x8000_001d } else { return Caches::default() }
    } else if max >= 4 {
        4
    } else {
        return Caches::default();
    };
    let mut out = Caches::default();
    for sub in 0..16 {
        let [a, b, c, _] = cpuid(leaf, sub);
        let kind = a & 0x1f; // 0 none, 1 data, 2 instruction, 3 unified
        if kind == 0 {
            break;
        }
        if kind == 2 {
            continue;
        }
        let size =
            ((b >> 22) as usize + 1) * ((b >> 12 & 0x3ff) as usize + 1) * ((b & 0xfff) as usize + 1) * (c as usize + 1);
        match a >> 5 & 0x7 {
            1 => out.l1d = size,
            2 => out.l2 = size,
            3 => {
                out.l3 = size;
                out.l3_sharing = (a >> 14 & 0xfff) as usize + 1;
            }
            _ => {}
        }
    }
    out
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Cpu {
    Cpu::default()
}

/// Block sizes of the crate's own kernels, from the caches of the core they run on. Each is
/// the fraction of a cache that the constant it replaced was of a Zen 5 core's (48 KB L1d,
/// 1 MB L2, 32 MB L3), so that machine keeps its measured behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Tuning {
    /// Reduction rows per pass of the implicit convolution's 6 × 64 kernel: the pass's
    /// rows (64 floats each) fill a third of L1d (64 rows = 16 KB of a 48 KB L1d; 42 → 40
    /// of a 32 KB one), a multiple of 8, 32–128.
    pub kc: usize,
    /// Floats of column-matrix block per thread in the portable convolution products: a
    /// quarter of L2 (256 KB of 1 MB), 16 K–1 M floats.
    pub conv_block: usize,
    /// Outputs at least this many bytes are streamed past the caches by the implicit
    /// convolution (they will not be in cache when the next layer reads them): a quarter of
    /// the L3 (8 MB of 32 MB), 4–8 MB. At most 8 MB: a virtual
    /// machine's CPUID may report the host's whole L3, most of it other tenants'.
    pub stream_bytes: usize,
}

/// The largest [`Tuning::kc`] (the kernels size their stack buffers by it).
pub const MAX_KC: usize = 128;

impl Tuning {
    /// The tuning for `caches` (unknown sizes count as the Zen 5's).
    pub fn for_caches(c: &Caches) -> Tuning {
        let l1d = if c.l1d == 0 { 48 << 10 } else { c.l1d };
        let l2 = if c.l2 == 0 { 1 << 20 } else { c.l2 };
        let kc = (l1d / 3 / (64 * 4)) / 8 * 8;
        let l3 = if c.l3 == 0 { 32 << 20 } else { c.l3 };
        Tuning {
            kc: kc.clamp(32, MAX_KC),
            conv_block: (l2 / 4 / 4).clamp(16 << 10, 1 << 20),
            stream_bytes: (l3 / 4).clamp(4 << 20, 8 << 20),
        }
    }
}

/// The tuning for this CPU, computed once.
pub fn tuning() -> &'static Tuning {
    static TUNING: OnceLock<Tuning> = OnceLock::new();
    TUNING.get_or_init(|| Tuning::for_caches(&cpu().caches))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zen5_tuning_is_the_constants_it_replaced() {
        let zen5 = Caches { l1d: 48 << 10, l2: 1 << 20, l3: 32 << 20, l3_sharing: 16 };
        assert_eq!(Tuning::for_caches(&zen5), Tuning { kc: 64, conv_block: 1 << 16, stream_bytes: 8 << 20 });
        // Unknown caches fall back to the same.
        assert_eq!(Tuning::for_caches(&Caches::default()), Tuning::for_caches(&zen5));
    }

    #[test]
    fn other_cores_get_their_own_fractions_within_bounds() {
        // Zen 4: 32 KB L1d, 1 MB L2. Sapphire Rapids: 48 KB, 2 MB, 105 MB L3.
        let zen4 = Tuning::for_caches(&Caches { l1d: 32 << 10, l2: 1 << 20, l3: 32 << 20, l3_sharing: 16 });
        assert_eq!((zen4.kc, zen4.conv_block, zen4.stream_bytes), (40, 1 << 16, 8 << 20));
        let spr = Tuning::for_caches(&Caches { l1d: 48 << 10, l2: 2 << 20, l3: 105 << 20, l3_sharing: 112 });
        assert_eq!((spr.kc, spr.conv_block, spr.stream_bytes), (64, 1 << 17, 8 << 20));
        let tiny = Tuning::for_caches(&Caches { l1d: 8 << 10, l2: 64 << 10, l3: 2 << 20, l3_sharing: 4 });
        assert_eq!((tiny.kc, tiny.conv_block, tiny.stream_bytes), (32, 16 << 10, 4 << 20));
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn this_cpu_is_described() {
        let c = cpu();
        assert!(!c.vendor.is_empty());
        assert!(c.family > 0);
        // Every x86-64 CPU since 2003 has a brand string and caches in CPUID, and std's
        // detection agrees with ours.
        assert!(!c.model_name.is_empty());
        assert_eq!(
            c.avx2_fma,
            std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        );
        assert_eq!(
            c.avx512,
            std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
                && std::arch::is_x86_feature_detected!("avx512f")
        );
        if c.caches.l1d > 0 {
            assert!(c.caches.l1d >= 8 << 10 && c.caches.l1d <= 1 << 20 && c.caches.l2 >= c.caches.l1d);
        }
        let line = c.summary();
        assert!(line.contains(&c.model_name) && line.contains("L1d"), "{line}");
    }
}
