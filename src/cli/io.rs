//! Reading `.npy` / `.csv` arrays and writing `.npy` results (SPEC §4).
//! Every error names the file, and where it applies the line or index.

use super::npy;
use lossgpu::{Error, Result};
use std::fmt::Display;
use std::io::Write;
use std::path::{Path, PathBuf};

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
    /// Read from a 2-byte float file, of this type.
    pub half: Option<lossgpu::DType>,
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
        locate(&self.dims, i)
    }

    /// "shape (3,)" / "shape (2, 4)", numpy style.
    pub fn shape_text(&self) -> String {
        match self.dims[..] {
            [n] => format!("shape ({n},)"),
            [r, c] => format!("shape ({r}, {c})"),
            _ => format!("shape {:?}", self.dims),
        }
    }

    /// How many nonzero values become 0 in f32 (|v| below 1.4e-45): the
    /// engine sees zeros there, which the report says.
    pub fn underflowed(&self) -> usize {
        self.data
            .iter()
            .filter(|&&v| v != 0.0 && v as f32 == 0.0)
            .count()
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
                narrow(v, self.integer)
                    .map_err(|why| self.error(format!("{} = {v:?} {why}", self.locate(i))))
            })
            .collect()
    }
}

/// `v` as f32, or why it cannot be: a finite value that overflows f32, or an
/// integer f32 cannot hold exactly, would silently change the result.
pub fn narrow(v: f64, integer: bool) -> std::result::Result<f32, &'static str> {
    let x = v as f32;
    if v.is_finite() && !x.is_finite() {
        Err("is outside the f32 range")
    } else if integer && x as f64 != v {
        Err("is not exact in f32")
    } else {
        Ok(x)
    }
}

/// "[i]" or "[row, col]" for element `i` of an array of `dims`.
pub fn locate(dims: &[usize], i: usize) -> String {
    match dims {
        [_, c] => format!("[{}, {}]", i / c, i % c),
        _ => format!("[{i}]"),
    }
}

/// An empty vector with room for `n` values, or an error saying how much
/// could not be had: an allocation that fails is a message, not an abort.
pub fn reserve<T>(n: usize) -> Result<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| {
        let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        Error::InvalidInput(format!(
            "cannot allocate {} for {n} values",
            bytes_text(bytes)
        ))
    })?;
    Ok(v)
}

/// Bytes as "3.2 GiB", "512 MiB", "17 KiB" or "12 bytes".
pub fn bytes_text(b: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    if v < 1024.0 {
        return format!("{b} bytes");
    }
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    format!("{v:.1} {unit}")
}

/// The memory a new allocation can still get (Linux: MemAvailable plus free
/// swap); None where it cannot be read.
pub fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = info.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    };
    Some(field("MemAvailable:")? + field("SwapFree:").unwrap_or(0))
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
    let bytes = read_bytes(path)?;
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

/// The whole file, with its buffer reserved first: a file larger than the
/// memory left is an error naming it, not an aborted allocation.
fn read_bytes(path: &str) -> Result<Vec<u8>> {
    use std::io::Read;
    let cannot = |e: std::io::Error| file_error(path, format!("cannot read: {e}"));
    let mut file = std::fs::File::open(path).map_err(cannot)?;
    let len = file.metadata().map_err(cannot)?.len();
    let mut bytes = reserve(usize::try_from(len).unwrap_or(usize::MAX))
        .map_err(|e| file_error(path, format!("{} bytes: {e}", len)))?;
    file.read_to_end(&mut bytes).map_err(cannot)?;
    Ok(bytes)
}

/// The dtypes SPEC §4 accepts.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    F16,
    Bf16,
    F32,
    F64,
    I32,
    I64,
}

impl Kind {
    /// The kind of a numpy dtype string, e.g. `<f4`.
    fn of(descr: &str) -> std::result::Result<Kind, String> {
        let expected =
            "expected little-endian float16, bfloat16 (<V2), float32, float64, int32 or int64";
        let half = |void| match super::dtypes::half_of(void) {
            lossgpu::DType::Bf16 => Kind::Bf16,
            _ => Kind::F16,
        };
        let shown = npy_quote(descr);
        let (order, code) = descr.split_at(descr.len().min(1));
        match (order, code) {
            (">", _) => Err(format!(
                "big-endian dtype {shown} is not supported (save it little-endian)"
            )),
            ("<" | "=", "f2") => Ok(half(false)),
            ("<" | "=" | "|", "V2") => Ok(half(true)),
            ("<" | "=", "f4") => Ok(Kind::F32),
            ("<" | "=", "f8") => Ok(Kind::F64),
            ("<" | "=", "i4") => Ok(Kind::I32),
            ("<" | "=", "i8") => Ok(Kind::I64),
            _ => Err(format!("dtype {shown} is not supported ({expected})")),
        }
    }

    pub fn size(self) -> usize {
        match self {
            Kind::F16 | Kind::Bf16 => 2,
            Kind::F32 | Kind::I32 => 4,
            Kind::F64 | Kind::I64 => 8,
        }
    }
}

fn npy_quote(s: &str) -> String {
    let q: String = s.chars().take(24).collect();
    if q.len() < s.len() {
        format!("'{q}…'")
    } else {
        format!("'{q}'")
    }
}

/// What an npy header promises, checked against the `data_len` bytes that
/// follow it.
pub struct Layout {
    pub kind: Kind,
    /// `[n]` or `[rows, cols]`.
    pub dims: Vec<usize>,
    pub count: u64,
}

pub fn layout(path: &str, header: &npy::Header, data_len: u64) -> Result<Layout> {
    let bad = |m: String| file_error(path, m);
    let kind = Kind::of(&header.descr).map_err(bad)?;
    let dims: Vec<usize> = match header.shape[..] {
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
    if dims.len() == 2 && header.fortran_order {
        return Err(bad(
            "is in Fortran order; save it in C order (numpy.ascontiguousarray)".to_string(),
        ));
    }
    let count = header
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| {
            bad(
                "not a valid .npy file (its shape has more elements than a 64-bit count holds)"
                    .to_string(),
            )
        })?;
    let size = kind.size();
    if count
        .checked_mul(size as u64)
        .is_none_or(|need| need > data_len)
    {
        return Err(bad(format!(
            "is truncated: the header promises {count} values of {size} bytes but {data_len} data bytes follow"
        )));
    }
    Ok(Layout { kind, dims, count })
}

fn read_npy(path: &str, bytes: &[u8]) -> Result<Array> {
    let bad = |m: String| file_error(path, m);
    let header =
        npy::parse_header(bytes).map_err(|e| bad(format!("not a valid .npy file ({e})")))?;
    let body = &bytes[header.data_offset..];
    let Layout { kind, dims, count } = layout(path, &header, body.len() as u64)?;
    let size = kind.size();
    let body = &body[..count as usize * size];
    let named = |e: Error| bad(e.to_string());
    let data: Vec<f64> = match kind {
        Kind::F16 => le_values(body, |b| lossgpu::f16::from_le_bytes(b).to_f64()).map_err(named)?,
        Kind::Bf16 => {
            le_values(body, |b| lossgpu::bf16::from_le_bytes(b).to_f64()).map_err(named)?
        }
        Kind::F32 => le_values(body, |b| f32::from_le_bytes(b) as f64).map_err(named)?,
        Kind::F64 => le_values(body, f64::from_le_bytes).map_err(named)?,
        Kind::I32 => le_values(body, |b| i32::from_le_bytes(b) as f64).map_err(named)?,
        Kind::I64 => {
            let ints: Vec<i64> = le_values(body, i64::from_le_bytes).map_err(named)?;
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
        half: match kind {
            Kind::F16 => Some(lossgpu::DType::F16),
            Kind::Bf16 => Some(lossgpu::DType::Bf16),
            _ => None,
        },
        path: path.to_string(),
    })
}

/// Little-endian values of N bytes each, into memory reserved first.
fn le_values<const N: usize, T>(body: &[u8], from: impl Fn([u8; N]) -> T) -> Result<Vec<T>> {
    let mut out = reserve(body.len() / N)?;
    out.extend(
        body.chunks_exact(N)
            .map(|c| from(c.try_into().unwrap_or([0; N]))),
    );
    Ok(out)
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
        half: None,
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

/// Writes little-endian f32 values with the given shape, durably
/// ([`Durable`]).
pub fn write_npy(path: &str, data: &[f32], dims: &[usize]) -> Result<()> {
    let mut out = super::chunks::NpyOut::create(path, dims)?;
    for chunk in data.chunks(1 << 16) {
        out.write(chunk)?;
    }
    out.finish()
}

/// A file written the way every output of the command line is written:
/// into a temporary file in the same directory, then, by
/// [`Durable::finish`], flushed, synced to disk and renamed over the target.
/// A full disk, an error or a kill leaves the old file (or none) in place,
/// never a truncated one; dropped unfinished, the temporary is removed.
pub struct Durable {
    file: Option<std::io::BufWriter<std::fs::File>>,
    temp: PathBuf,
    target: PathBuf,
}

impl Durable {
    pub fn create(target: impl AsRef<Path>) -> Result<Durable> {
        let target = target.as_ref().to_path_buf();
        let temp = temp_beside(&target);
        let file = std::fs::File::create(&temp)
            .map_err(|e| file_error(target.display(), format!("cannot write: {e}")))?;
        Ok(Durable {
            file: Some(std::io::BufWriter::with_capacity(1 << 20, file)),
            temp,
            target,
        })
    }

    /// Writes `bytes` at the end of the file.
    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        let result = match &mut self.file {
            Some(f) => f.write_all(bytes),
            None => Err(std::io::ErrorKind::BrokenPipe.into()),
        };
        result.map_err(|e| self.error(e))
    }

    /// Flushes, syncs and renames the file over its target.
    pub fn finish(mut self) -> Result<()> {
        let file = self.file.take();
        let done = (|| -> std::io::Result<()> {
            let file = file.ok_or(std::io::ErrorKind::BrokenPipe)?;
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            std::fs::rename(&self.temp, &self.target)
        })();
        if done.is_err() {
            let _ = std::fs::remove_file(&self.temp);
        }
        done.map_err(|e| self.error(e))
    }

    fn error(&self, e: std::io::Error) -> Error {
        file_error(self.target.display(), format!("cannot write: {e}"))
    }
}

impl Drop for Durable {
    fn drop(&mut self) {
        if self.file.is_some() {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

/// Writes `bytes` to `path` as a [`Durable`] file.
pub fn write_durably(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    let mut file = Durable::create(path)?;
    file.write(bytes)?;
    file.finish()
}

/// A [`Durable`] write for a writer that takes a path (the plotting
/// backends): `write` fills a temporary file beside `path`, which is then
/// synced and renamed over it.
pub fn write_via_temp(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let temp = temp_beside(path);
    let done = write(&temp).and_then(|()| {
        let sync = std::fs::File::open(&temp).and_then(|f| f.sync_all());
        sync.and_then(|()| std::fs::rename(&temp, path))
            .map_err(|e| file_error(path.display(), format!("cannot write: {e}")))
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    done
}

/// A temporary name in the directory of `path`, unique to this process.
pub fn temp_beside(path: &Path) -> PathBuf {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The name keeps its extension last: image encoders choose by it.
    dir.join(format!(".partial.{}.{name}", std::process::id()))
}

/// What a path names, for clash checks: the file itself where it exists
/// (links and `./` resolved), else its directory resolved plus its name.
fn identity(path: &str) -> PathBuf {
    let p = Path::new(path);
    if let Ok(c) = p.canonicalize() {
        return c;
    }
    let dir = match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    dir.join(p.file_name().unwrap_or_default())
}

/// Whether two paths name one file: the same resolved path, or (on Unix)
/// two hard links to the same inode.
fn same_file(a: &str, b: &str) -> bool {
    if identity(a) == identity(b) {
        return true;
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    false
}

/// Refuses, before any work, two outputs that name one file (the second
/// would silently replace the first) and an output that names an input
/// (unless the user asked for `--in-place`). Each is (flag, path).
pub fn check_outputs(
    outputs: &[(&str, &str)],
    inputs: &[(&str, &str)],
    in_place: bool,
) -> Result<()> {
    for (k, &(flag, out)) in outputs.iter().enumerate() {
        check_out_path(out)?;
        if let Some((other, _)) = outputs[..k].iter().find(|(_, o)| same_file(o, out)) {
            return Err(file_error(
                out,
                format!(
                    "{other} and {flag} name the same file; one output would overwrite the other"
                ),
            ));
        }
        if in_place {
            continue;
        }
        if let Some((input, _)) = inputs.iter().find(|(_, i)| same_file(i, out)) {
            return Err(file_error(
                out,
                format!("{flag} names the {input} input; writing it would replace the input (pass --in-place to allow it)"),
            ));
        }
    }
    Ok(())
}
