//! Numbers in text: digit groups and plurals, for every message and table.

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
