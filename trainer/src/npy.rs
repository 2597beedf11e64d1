//! The NumPy `.npy` format (version 1.0, little-endian f32, C order), enough to
//! hand embeddings to numpy and read them back.

use std::fs;
use std::path::Path;

use metricann::{Error, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

/// Writes `rows` (each of length `dim`) as an `N×dim` float32 array.
pub fn write_f32(path: &Path, rows: &[Vec<f32>], dim: usize) -> Result<()> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        rows.len(),
        dim
    );
    // The header, with magic and lengths, is padded to a multiple of 64 bytes.
    let unpadded = MAGIC.len() + 2 + 2 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(MAGIC.len() + 4 + header.len() + rows.len() * dim * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for row in rows {
        if row.len() != dim {
            return Err(Error::BadInput(format!(
                "row of length {} in a {dim}-column array",
                row.len()
            )));
        }
        for v in row {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    crate::train::write_file(path, &out)
}

/// Reads an `N×D` little-endian float32 `.npy` file into rows.
pub fn read_f32(path: &Path) -> Result<Vec<Vec<f32>>> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |reason: &str| Error::BadInput(format!("{}: {reason}", path.display()));
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        v => return Err(bad(&format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(start..start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| bad("truncated header"))?;
    if !header.contains("'descr': '<f4'") {
        return Err(bad("only little-endian float32 arrays are supported"));
    }
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape = header
        .split("'shape': (")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in header"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let [n, d] = dims[..] else {
        return Err(bad("expected a 2-dimensional array"));
    };
    let data = &bytes[start + header_len..];
    if data.len() != n * d * 4 {
        return Err(bad(&format!(
            "expected {} bytes of data, found {}",
            n * d * 4,
            data.len()
        )));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok(values
        .chunks(d.max(1))
        .take(n)
        .map(<[f32]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_has_an_aligned_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.npy");
        let rows = vec![vec![1.0, -2.5, 3.0], vec![0.0, 0.5, f32::MIN_POSITIVE]];
        write_f32(&path, &rows, 3).unwrap();
        let bytes = fs::read(&path).unwrap();
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(read_f32(&path).unwrap(), rows);
    }

    #[test]
    fn refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.npy");
        fs::write(&path, b"not numpy").unwrap();
        assert!(read_f32(&path).unwrap_err().to_string().contains("x.npy"));
    }
}
