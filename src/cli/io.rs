//! Reading `.npy` / `.csv` arrays and writing `.npy` results (SPEC §4).
//! Every error names the file, and where it applies the line or index.

use lossgpu::{Error, Result};
use npyz::{DType, Endianness, NpyFile, NpyHeader, Order, TypeChar, WriterBuilder};
use std::fmt::Display;
use std::io::{BufWriter, Cursor};
use std::path::Path;

/// A 1-D or 2-D (row-major) array as read from a file. Values are kept as
/// f64 so integer class indices and f64 inputs are checked before the
/// narrowing to f32.
#[derive(Debug, Clone)]
pub struct Array {
    pub data: Vec<f64>,
    /// `[n]` or `[rows, cols]`, as in the file.
    pub dims: Vec<usize>,
    /// Read from an integer dtype.
    pub integer: bool,
    /// The path as the user wrote it, for messages.
    pub path: String,
}

impl Array {
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// 1 for a 1-D array.
    pub fn cols(&self) -> usize {
        self.dims.get(1).copied().unwrap_or(1)
    }

    pub fn is_2d(&self) -> bool {
        self.dims.len() == 2
    }

    /// "[i]" or "[row, col]" for element `i`, for messages.
    pub fn locate(&self, i: usize) -> String {
        if self.is_2d() {
            format!("[{}, {}]", i / self.cols(), i % self.cols())
        } else {
            format!("[{i}]")
        }
    }

    /// "shape (3,)" / "shape (2, 4)", numpy style.
    pub fn shape_text(&self) -> String {
        match self.dims[..] {
            [n] => format!("shape ({n},)"),
            [r, c] => format!("shape ({r}, {c})"),
            _ => format!("shape {:?}", self.dims),
        }
    }

    pub fn error(&self, message: impl Display) -> Error {
        file_error(&self.path, message)
    }

    /// The values as f32, which is what the engine computes on. A finite
    /// value that overflows f32, or an integer f32 cannot hold exactly,
    /// would silently change the result, so both are errors.
    pub fn to_f32(&self) -> Result<Vec<f32>> {
        self.data
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let x = v as f32;
                if v.is_finite() && !x.is_finite() {
                    Err(self.error(format!("{} = {v} is outside the f32 range", self.locate(i))))
                } else if self.integer && x as f64 != v {
                    Err(self.error(format!("{} = {v} is not exact in f32", self.locate(i))))
                } else {
                    Ok(x)
                }
            })
            .collect()
    }
}

pub fn file_error(path: impl Display, message: impl Display) -> Error {
    Error::Io {
        path: path.to_string(),
        message: message.to_string(),
    }
}

fn extension(path: &str) -> String {
    Path::new(path)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default()
}

/// Reads a `.npy` or `.csv` file, chosen by its extension.
pub fn read(path: &str) -> Result<Array> {
    let ext = extension(path);
    if ext != "npy" && ext != "csv" {
        return Err(file_error(
            path,
            "unknown file type (expected .npy or .csv)",
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| file_error(path, format!("cannot read: {e}")))?;
    let array = if ext == "npy" {
        read_npy(path, &bytes)?
    } else {
        read_csv(path, &bytes)?
    };
    if array.data.is_empty() {
        return Err(file_error(path, "has no values"));
    }
    Ok(array)
}

/// The dtypes SPEC §4 accepts.
#[derive(Clone, Copy)]
enum Kind {
    F32,
    F64,
    I32,
    I64,
}

/// The header of an npy file. npyz multiplies the shape's dimensions
/// unchecked (for the element count and the strides): a shape whose product
/// overflows u64, such as (9223372036854775809, 2), panics in a debug build
/// and wraps in a release one (there that file was read as 2 values). So the
/// parse runs under `catch_unwind` with a silent panic hook (the binary's
/// hook would print an "internal error" line; the readers run before any
/// other thread exists), and the count is checked here.
fn read_npy_header(cursor: &mut Cursor<&[u8]>) -> std::result::Result<NpyHeader, String> {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        NpyHeader::from_reader(&mut *cursor)
    }));
    std::panic::set_hook(hook);
    let too_many = "not a valid .npy file (its shape has more elements than a 64-bit count holds)";
    match parsed {
        Ok(Ok(header)) => match header
            .shape()
            .iter()
            .try_fold(1u64, |n, &d| n.checked_mul(d))
        {
            Some(_) => Ok(header),
            None => Err(too_many.to_string()),
        },
        Ok(Err(e)) => Err(format!("not a valid .npy file ({e})")),
        Err(_) => Err(too_many.to_string()),
    }
}

fn read_npy(path: &str, bytes: &[u8]) -> Result<Array> {
    let bad = |m: String| file_error(path, m);
    let mut cursor = Cursor::new(bytes);
    let header = read_npy_header(&mut cursor).map_err(bad)?;
    let body = &bytes[cursor.position() as usize..];

    let DType::Plain(ts) = header.dtype() else {
        return Err(bad(format!(
            "structured dtype {} is not supported (expected float32, float64, int32 or int64)",
            header.dtype().descr()
        )));
    };
    if ts.endianness() == Endianness::Big {
        return Err(bad(format!(
            "big-endian dtype {ts} is not supported (save it little-endian)"
        )));
    }
    let kind = match (ts.type_char(), ts.size_field(), ts.endianness()) {
        (TypeChar::Float, 4, Endianness::Little) => Kind::F32,
        (TypeChar::Float, 8, Endianness::Little) => Kind::F64,
        (TypeChar::Int, 4, Endianness::Little) => Kind::I32,
        (TypeChar::Int, 8, Endianness::Little) => Kind::I64,
        _ => {
            return Err(bad(format!(
            "dtype {ts} is not supported (expected little-endian float32, float64, int32 or int64)"
        )))
        }
    };
    let dims: Vec<usize> = match *header.shape() {
        [] => vec![1],
        [n] => vec![n as usize],
        [r, c] => vec![r as usize, c as usize],
        ref more => {
            return Err(bad(format!(
                "has {} dimensions; only 1-D or 2-D arrays are supported",
                more.len()
            )))
        }
    };
    if dims.len() == 2 && header.order() == Order::Fortran {
        return Err(bad(
            "is in Fortran order; save it in C order (numpy.ascontiguousarray)".to_string(),
        ));
    }
    let count = header.len();
    let size = ts.size_field();
    if count
        .checked_mul(size)
        .is_none_or(|need| need > body.len() as u64)
    {
        return Err(bad(format!(
            "is truncated: the header promises {count} values of {size} bytes but {} data bytes follow",
            body.len()
        )));
    }
    let npy = NpyFile::with_header(header, body);
    let read_err = |e: std::io::Error| bad(format!("cannot read the data ({e})"));
    let data: Vec<f64> = match kind {
        Kind::F32 => npy
            .into_vec::<f32>()
            .map_err(read_err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        Kind::F64 => npy.into_vec::<f64>().map_err(read_err)?,
        Kind::I32 => npy
            .into_vec::<i32>()
            .map_err(read_err)?
            .into_iter()
            .map(f64::from)
            .collect(),
        Kind::I64 => {
            let ints = npy.into_vec::<i64>().map_err(read_err)?;
            // f64 holds every i64 only up to 2^53; past it 2^53 + 1 would
            // round to 2^53 before to_f32's exactness check could see it.
            if let Some(i) = ints.iter().position(|&v| v as f64 as i128 != v as i128) {
                let at = match dims[..] {
                    [_, c] => format!("[{}, {}]", i / c, i % c),
                    _ => format!("[{i}]"),
                };
                return Err(bad(format!("{at} = {} is not exact in f32", ints[i])));
            }
            ints.into_iter().map(|v| v as f64).collect()
        }
    };
    Ok(Array {
        data,
        dims,
        integer: matches!(kind, Kind::I32 | Kind::I64),
        path: path.to_string(),
    })
}

/// One value per line gives a 1-D array; rows of comma-separated values give
/// a 2-D one (a single row is 1×m). Blank lines are skipped.
fn read_csv(path: &str, bytes: &[u8]) -> Result<Array> {
    let text = std::str::from_utf8(bytes).map_err(|_| file_error(path, "is not UTF-8 text"))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut data = Vec::new();
    let mut rows = 0;
    let mut cols: Option<usize> = None;
    for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim())) {
        if line.is_empty() {
            continue;
        }
        let mut count = 0;
        for field in line.split(',').map(str::trim) {
            let value: f64 = field.parse().map_err(|_| {
                let shown: String = field.chars().take(40).collect();
                file_error(path, format!("line {number}: '{shown}' is not a number"))
            })?;
            data.push(value);
            count += 1;
        }
        match cols {
            None => cols = Some(count),
            Some(c) if c != count => {
                return Err(file_error(
                    path,
                    format!("line {number}: {count} value(s), but the first row has {c}"),
                ))
            }
            Some(_) => {}
        }
        rows += 1;
    }
    let dims = match cols {
        Some(c) if c > 1 => vec![rows, c],
        _ => vec![rows],
    };
    Ok(Array {
        data,
        dims,
        integer: false,
        path: path.to_string(),
    })
}

/// Refuses an output name that is not `.npy` before any work is done, so a
/// typo does not produce an npy file named `.csv`.
pub fn check_out_path(path: &str) -> Result<()> {
    if extension(path) == "npy" {
        Ok(())
    } else {
        Err(file_error(
            path,
            "output files are .npy; give a name ending in .npy",
        ))
    }
}

/// Writes little-endian f32 values with the given shape.
pub fn write_npy(path: &str, data: &[f32], dims: &[usize]) -> Result<()> {
    let bad = |e: std::io::Error| file_error(path, format!("cannot write: {e}"));
    let file = std::fs::File::create(path).map_err(bad)?;
    let shape: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
    let mut writer = npyz::WriteOptions::<f32>::new()
        .default_dtype()
        .shape(&shape)
        .writer(BufWriter::new(file))
        .begin_nd()
        .map_err(bad)?;
    writer.extend(data.iter().copied()).map_err(bad)?;
    writer.finish().map_err(bad)
}
