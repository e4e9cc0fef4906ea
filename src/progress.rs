//! The progress bars of long work (decoding a folder, IWAE evaluation): one look, a rate
//! rounded to whole items per second, drawn on stderr only when it is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle};
use std::io::IsTerminal;

/// A bar over `len` items called `unit` (plural), prefixed by `what`; hidden unless `show` and
/// stderr is a terminal.
pub fn bar(show: bool, len: usize, what: &str, unit: &str) -> ProgressBar {
    if !show || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    let template = format!("{{prefix}} [{{bar:30.cyan/blue}}] {{pos}}/{{len}} {unit} ({{rate}}, eta {{eta}})");
    let style = ProgressStyle::with_template(&template)
        .expect("valid template")
        .with_key("rate", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
            let _ = write!(w, "{}/s", crate::text::group(s.per_sec().round() as usize));
        })
        .progress_chars("=> ");
    b.set_style(style);
    b.set_prefix(what.to_string());
    b
}
