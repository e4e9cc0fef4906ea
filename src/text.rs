//! Numbers in text: digit groups and plurals, for every message and table; and the name the
//! user ran the program by, for the commands messages suggest.

/// "1 sample", "2 samples": `n` and `noun`, made plural (with an `s`) unless `n` is 1.
pub fn plural(n: usize, noun: &str) -> String {
    if n == 1 { format!("1 {noun}") } else { format!("{} {noun}s", group(n)) }
}

/// 652824 → "652,824".
pub fn group(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals() {
        assert_eq!(plural(1, "sample"), "1 sample");
        assert_eq!(plural(0, "core"), "0 cores");
        assert_eq!(plural(10_000, "image"), "10,000 images");
    }

    #[test]
    fn digit_groups() {
        assert_eq!(group(652_824), "652,824");
        assert_eq!(group(12), "12");
    }
}

static COMMAND_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes [`command_name`] `name` from now on, for a program that is not the `vae` binary (the
/// Python package, started as `python`, says `vae`). Returns false if it was already read.
pub fn set_command_name(name: &str) -> bool {
    COMMAND_NAME.set(name.to_string()).is_ok()
}

/// How the user ran this program, for the commands messages tell them to type next: `vae`
/// when it was found on the PATH; `cargo run --release --` when cargo started it from its
/// target directory (the README's first command; `vae` is then not on the PATH); otherwise
/// the path it was started by (`target/release/vae`, `./vae`).
pub fn command_name() -> &'static str {
    COMMAND_NAME.get_or_init(|| {
        let argv0 = std::env::args_os().next().map(std::path::PathBuf::from).unwrap_or_default();
        command_name_for(&argv0, std::env::var_os("CARGO").is_some())
    })
}

/// [`command_name`] for a program started as `argv0`, by cargo or not.
pub fn command_name_for(argv0: &std::path::Path, by_cargo: bool) -> String {
    if argv0.components().count() <= 1 {
        return "vae".into();
    }
    let profile = argv0.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str());
    let in_target = argv0.parent().and_then(|p| p.parent()).and_then(|p| p.file_name()).is_some_and(|n| n == "target");
    match profile {
        Some("release") if by_cargo && in_target => "cargo run --release --".into(),
        Some("debug") if by_cargo && in_target => "cargo run --".into(),
        _ => argv0.display().to_string(),
    }
}

#[cfg(test)]
mod command_name_tests {
    use super::command_name_for;
    use std::path::Path;

    #[test]
    fn messages_name_the_command_as_the_user_typed_it() {
        assert_eq!(command_name_for(Path::new("vae"), false), "vae");
        assert_eq!(command_name_for(Path::new("vae"), true), "vae");
        // `cargo run --release -- train` starts target/release/vae with CARGO set.
        assert_eq!(command_name_for(Path::new("/w/main/target/release/vae"), true), "cargo run --release --");
        assert_eq!(command_name_for(Path::new("target/debug/vae"), true), "cargo run --");
        // Typed by hand: the path as typed.
        assert_eq!(command_name_for(Path::new("target/release/vae"), false), "target/release/vae");
        assert_eq!(command_name_for(Path::new("./vae"), true), "./vae");
    }
}
