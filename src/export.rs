//! Arrays for other tools: NumPy's `.npy` (format 1.0, little-endian f32, C order) and CSV.

use std::fmt::Write as _;

/// A `.npy` file (NumPy format 1.0) of f32 `data` in C order with `shape`; `np.load` reads it.
///
/// # Panics
/// If `data` does not hold exactly the product of `shape` values.
pub fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape {shape:?} vs {} values", data.len());
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A 1-tuple needs its trailing comma: (5,).
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// CSV with a header line: `columns` names, then one line per row of `rows` (`columns.len()`
/// values each, printed exactly: Rust's shortest round-trip form).
///
/// # Panics
/// If a row's length differs from the header's.
pub fn csv(columns: &[String], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut out = columns.join(",");
    out.push('\n');
    for row in rows {
        assert_eq!(row.len(), columns.len(), "a row of {} values for {} columns", row.len(), columns.len());
        let _ = writeln!(out, "{}", row.join(","));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_header_and_data_are_numpys() {
        let bytes = npy(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, -0.5]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + len) % 64, 0, "the data starts 64-byte aligned");
        let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"), "{header}");
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + len + 6 * 4);
        assert_eq!(&bytes[10 + len + 20..], &(-0.5f32).to_le_bytes());
        let one = npy(&[2], &[1.0, 2.0]);
        assert!(std::str::from_utf8(&one[10..64]).unwrap().contains("'shape': (2,)"));
    }

    #[test]
    fn csv_lines() {
        let text = csv(&["a".into(), "b".into()], [vec!["1".into(), "0.1".into()]].into_iter());
        assert_eq!(text, "a,b\n1,0.1\n");
    }
}
