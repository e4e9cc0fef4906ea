//! Arrays for other tools: NumPy's `.npy` (format 1.0, little-endian, C order) and `.npz`
//! (a stored ZIP of them), and CSV.

use std::fmt::Write as _;

/// A `.npy` file (NumPy format 1.0) of f32 `data` in C order with `shape`; `np.load` reads it.
///
/// # Panics
/// If `data` does not hold exactly the product of `shape` values.
pub fn npy(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape {shape:?} vs {} values", data.len());
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_raw("<f4", shape, &bytes)
}

/// A `.npy` file of bytes (`|u1`), shape `[n]`.
pub fn npy_u8(data: &[u8]) -> Vec<u8> {
    npy_raw("|u1", &[data.len()], data)
}

/// A `.npy` file of bytes (`|u1`) in C order with `shape` (images `[N, C, H, W]`).
///
/// # Panics
/// If `data` does not hold exactly the product of `shape` values.
pub fn npy_u8_shaped(shape: &[usize], data: &[u8]) -> Vec<u8> {
    assert_eq!(shape.iter().product::<usize>(), data.len(), "shape {shape:?} vs {} values", data.len());
    npy_raw("|u1", shape, data)
}

/// A `.npy` file of 64-bit integers (`<i8`), shape `[n]`.
pub fn npy_i64(data: &[i64]) -> Vec<u8> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    npy_raw("<i8", &[data.len()], &bytes)
}

/// A `.npy` file of strings as NumPy's fixed-width unicode (`<U{longest}`: UTF-32LE code
/// points, zero-padded), which `np.load` reads without pickling.
pub fn npy_strings(strings: &[String]) -> Vec<u8> {
    let width = strings.iter().map(|s| s.chars().count()).max().unwrap_or(0).max(1);
    let mut data = Vec::with_capacity(strings.len() * width * 4);
    for s in strings {
        let n = s.chars().count();
        data.extend(s.chars().flat_map(|c| (c as u32).to_le_bytes()));
        data.extend(std::iter::repeat_n(0u8, (width - n) * 4));
    }
    npy_raw(&format!("<U{width}"), &[strings.len()], &data)
}

/// A `.npy` (format 1.0) of `data`, already in NumPy's `descr` layout, C order, `shape`.
fn npy_raw(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    // A 1-tuple needs its trailing comma: (5,).
    let shape = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    // Magic (6) + version (2) + length (2) + header + '\n', padded to a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Why an `.npz` cannot be written.
#[derive(Debug, thiserror::Error)]
#[error("the arrays total {0} bytes; an .npz of this kind holds at most 4 GiB: write .npy or .csv")]
pub struct NpzTooLarge(u64);

/// An `.npz` archive (`np.savez`'s format: a ZIP of `.npy` files, stored uncompressed) of
/// `arrays`, each `(name, .npy bytes)`; `np.load(path)["name"]` reads each.
///
/// # Errors
/// [`NpzTooLarge`] when the archive would pass 4 GiB (ZIP64 is not written).
pub fn npz(arrays: &[(&str, Vec<u8>)]) -> Result<Vec<u8>, NpzTooLarge> {
    let total: u64 = arrays.iter().map(|(n, d)| d.len() as u64 + 2 * (n.len() as u64 + 50)).sum::<u64>() + 22;
    if total > u32::MAX as u64 {
        return Err(NpzTooLarge(total));
    }
    let (mut out, mut central) = (Vec::new(), Vec::new());
    // 1980-01-01 00:00, the ZIP epoch.
    let (time, date) = (0u16, (1 << 5) | 1);
    for (name, data) in arrays {
        let name = format!("{name}.npy");
        let mut crc = flate2::Crc::new();
        crc.update(data);
        let (crc, size, offset) = (crc.sum(), data.len() as u32, out.len() as u32);
        let common = |v: &mut Vec<u8>| {
            for x in [20u16, 0, 0, time, date] {
                v.extend_from_slice(&x.to_le_bytes()); // version needed, flags, stored, time, date
            }
            for x in [crc, size, size] {
                v.extend_from_slice(&x.to_le_bytes());
            }
            v.extend_from_slice(&(name.len() as u16).to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra field length
        };
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(data);
        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        central.extend_from_slice(&20u16.to_le_bytes()); // version made by
        common(&mut central);
        for x in [0u16, 0, 0] {
            central.extend_from_slice(&x.to_le_bytes()); // comment length, disk, internal attributes
        }
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name.as_bytes());
    }
    let (cd_offset, cd_size, n) = (out.len() as u32, central.len() as u32, arrays.len() as u16);
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for x in [0u16, 0, n, n] {
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
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

    #[test]
    fn npz_is_a_stored_zip_of_npy_files() {
        let (a, b) = (npy(&[2], &[1.0, 2.0]), npy_strings(&["cat.png".into(), "é".into()]));
        let z = npz(&[("mu", a.clone()), ("paths", b.clone())]).unwrap();
        assert_eq!(&z[..4], &0x0403_4b50u32.to_le_bytes());
        // The first entry: its name, then its bytes as they are, with their CRC-32.
        let name_len = u16::from_le_bytes([z[26], z[27]]) as usize;
        assert_eq!(&z[30..30 + name_len], b"mu.npy");
        assert_eq!(&z[30 + name_len..30 + name_len + a.len()], &a[..]);
        let mut crc = flate2::Crc::new();
        crc.update(&a);
        assert_eq!(u32::from_le_bytes(z[14..18].try_into().unwrap()), crc.sum());
        // The end record counts two entries, and its central directory is where it says.
        let end = z.len() - 22;
        assert_eq!(&z[end..end + 4], &0x0605_4b50u32.to_le_bytes());
        assert_eq!(u16::from_le_bytes([z[end + 10], z[end + 11]]), 2);
        let cd = u32::from_le_bytes(z[end + 16..end + 20].try_into().unwrap()) as usize;
        assert_eq!(&z[cd..cd + 4], &0x0201_4b50u32.to_le_bytes());
        // Strings: '<U7', UTF-32LE, zero-padded.
        let len = u16::from_le_bytes([b[8], b[9]]) as usize;
        assert!(std::str::from_utf8(&b[10..10 + len]).unwrap().contains("'descr': '<U7'"));
        let data = &b[10 + len..];
        assert_eq!(data.len(), 2 * 7 * 4);
        assert_eq!(&data[28..32], &('é' as u32).to_le_bytes());
        assert!(data[32..].iter().all(|&v| v == 0));
    }
}
