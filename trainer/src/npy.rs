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

/// The parts of a `.npy` file's header this module reads.
struct Header {
    /// The dtype, e.g. `<f4`.
    descr: String,
    rows: usize,
    cols: usize,
    /// Offset of the data in the file.
    start: usize,
}

/// Parses the header of a 2-dimensional, C-ordered `.npy` file.
fn header(path: &Path, bytes: &[u8]) -> Result<Header> {
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
    let descr = header
        .split("'descr': '")
        .nth(1)
        .and_then(|s| s.split('\'').next())
        .ok_or_else(|| bad("no dtype in header"))?
        .to_string();
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
    let [rows, cols] = dims[..] else {
        return Err(bad("expected a 2-dimensional array"));
    };
    Ok(Header {
        descr,
        rows,
        cols,
        start: start + header_len,
    })
}

/// The data of `h` as `rows × cols` items of `size` bytes, length-checked.
fn data<'a>(path: &Path, bytes: &'a [u8], h: &Header, size: usize) -> Result<&'a [u8]> {
    let data = &bytes[h.start.min(bytes.len())..];
    let want = h.rows.checked_mul(h.cols).and_then(|x| x.checked_mul(size));
    if want != Some(data.len()) {
        return Err(Error::BadInput(format!(
            "{}: expected {} bytes of data for shape ({}, {}), found {}",
            path.display(),
            want.map_or("too many".into(), |w| w.to_string()),
            h.rows,
            h.cols,
            data.len()
        )));
    }
    Ok(data)
}

/// Reads an `N×D` little-endian float32 `.npy` file into rows.
pub fn read_f32(path: &Path) -> Result<Vec<Vec<f32>>> {
    let (cols, values) = read_f32_flat(path)?;
    Ok(values.chunks(cols.max(1)).map(<[f32]>::to_vec).collect())
}

/// Reads an `N×D` little-endian float32 `.npy` file as `D` and its rows one
/// after another in one buffer (a million rows are one allocation, not a
/// million).
pub fn read_f32_flat(path: &Path) -> Result<(usize, Vec<f32>)> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let h = header(path, &bytes)?;
    if h.descr != "<f4" {
        return Err(Error::BadInput(format!(
            "{}: only little-endian float32 arrays are supported (found dtype {})",
            path.display(),
            h.descr
        )));
    }
    let data = data(path, &bytes, &h, 4)?;
    let values = data
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((h.cols, values))
}

/// Reads an `N×K` array of row indices (ground-truth neighbour lists): little-endian
/// `int32`, `int64`, `uint32` or `uint64`. A negative index is refused.
pub fn read_ids(path: &Path) -> Result<Vec<Vec<u64>>> {
    let bytes = fs::read(path).map_err(|e| Error::io(path, e))?;
    let h = header(path, &bytes)?;
    let size = match h.descr.as_str() {
        "<i4" | "<u4" => 4,
        "<i8" | "<u8" => 8,
        other => {
            return Err(Error::BadInput(format!(
                "{}: expected an integer array (int32, int64, uint32, uint64), found dtype {other}",
                path.display()
            )));
        }
    };
    let signed = h.descr.starts_with("<i");
    let data = data(path, &bytes, &h, size)?;
    let mut values = Vec::with_capacity(h.rows * h.cols);
    for c in data.chunks_exact(size) {
        let v: i128 = match (size, signed) {
            (4, true) => i32::from_le_bytes([c[0], c[1], c[2], c[3]]).into(),
            (4, false) => u32::from_le_bytes([c[0], c[1], c[2], c[3]]).into(),
            (_, true) => {
                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).into()
            }
            (_, false) => {
                u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]).into()
            }
        };
        values.push(
            u64::try_from(v)
                .map_err(|_| Error::BadInput(format!("{}: negative index {v}", path.display())))?,
        );
    }
    Ok(values
        .chunks(h.cols.max(1))
        .take(h.rows)
        .map(<[u64]>::to_vec)
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
        assert!(read_ids(&path).unwrap_err().to_string().contains("x.npy"));
    }

    /// A `.npy` file with the given dtype, shape and raw data.
    fn npy(path: &Path, descr: &str, rows: usize, cols: usize, data: &[u8]) {
        let header = format!(
            "{{'descr': '{descr}', 'fortran_order': False, 'shape': ({rows}, {cols}), }}\n"
        );
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        fs::write(path, out).unwrap();
    }

    #[test]
    fn reads_integer_id_arrays() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gt.npy");
        let ids: Vec<u8> = [3i64, 1, 4, 1, 5, 9]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        npy(&path, "<i8", 2, 3, &ids);
        assert_eq!(read_ids(&path).unwrap(), vec![vec![3, 1, 4], vec![1, 5, 9]]);
        let ids: Vec<u8> = [7u32, 8].iter().flat_map(|x| x.to_le_bytes()).collect();
        npy(&path, "<u4", 1, 2, &ids);
        assert_eq!(read_ids(&path).unwrap(), vec![vec![7, 8]]);
        let ids: Vec<u8> = [-1i32, 2].iter().flat_map(|x| x.to_le_bytes()).collect();
        npy(&path, "<i4", 1, 2, &ids);
        assert!(
            read_ids(&path)
                .unwrap_err()
                .to_string()
                .contains("negative")
        );
        // Wrong dtype, short data, absurd shape: refused with the file named.
        npy(&path, "<f4", 1, 2, &[0; 8]);
        assert!(read_ids(&path).unwrap_err().to_string().contains("gt.npy"));
        npy(&path, "<i4", 2, 2, &[0; 8]);
        assert!(
            read_ids(&path)
                .unwrap_err()
                .to_string()
                .contains("expected 16 bytes")
        );
        npy(&path, "<f4", usize::MAX, 4, &[0; 8]);
        assert!(read_f32(&path).unwrap_err().to_string().contains("gt.npy"));
    }
}
