//! `vae cache`: what the decoded-folder cache holds, and clearing it.
//!
//! Doc comments on arguments are clap's `--help` text, not rustdoc.

use crate::data::cache;
use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Args, Debug)]
#[command(next_line_help = true)]
pub struct CacheArgs {
    /// Remove every cached decode (the next run on each folder decodes it again)
    #[arg(long)]
    pub clear: bool,
}

/// "12.3 MB".
fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1 << 20) as f64)
}

/// `vae cache`: lists the cache's entries, least recently used first, with its size against
/// the limit; `--clear` removes them.
///
/// # Errors
/// When no cache folder can be named (no `VAE_CACHE_DIR`, `XDG_CACHE_HOME` or `HOME`), or an
/// entry cannot be removed.
pub fn cache(a: CacheArgs) -> Result<()> {
    let Some(dir) = cache::dir() else {
        bail!("no cache folder can be named: set VAE_CACHE_DIR (or HOME)");
    };
    let entries = cache::entries_in(&dir);
    let total: u64 = entries.iter().map(|e| e.bytes).sum();
    if a.clear {
        for e in &entries {
            std::fs::remove_file(&e.path).with_context(|| format!("cannot remove {}", e.path.display()))?;
        }
        println!(
            "removed {} ({}) from {}",
            crate::text::plural(entries.len(), "cached folder"),
            mb(total),
            dir.display()
        );
        return Ok(());
    }
    let now = std::time::SystemTime::now();
    for e in &entries {
        let days = now.duration_since(e.used).map_or(0.0, |d| d.as_secs_f64() / 86_400.0);
        let name = e.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name}  {:>10}  last used {days:.1} days ago", mb(e.bytes));
    }
    println!(
        "{}: {} in {}, limit {} (VAE_CACHE_LIMIT_MB; least recently used go first); `vae cache --clear` empties it",
        dir.display(),
        crate::text::plural(entries.len(), "cached folder"),
        mb(total),
        mb(cache::limit_bytes())
    );
    Ok(())
}
