//! `.npy` files read and written in chunks, so that a command's memory stays
//! bounded whatever the file's size: values come in as f32 (f64 and integer
//! data converted and checked per chunk), outputs go out chunk by chunk into
//! a temporary file that replaces the target only when complete.

use super::io::{self, file_error, layout, narrow, Durable, Kind, Layout};
use super::npy;
use lossgpu::Result;
use std::fs::File;
use std::io::{BufReader, Read};

/// Values per chunk: 2^22 (16 MiB of f32 per input). `LOSSGPU_CLI_CHUNK`
/// sets it (the tests use small chunks).
pub fn chunk_len() -> usize {
    std::env::var("LOSSGPU_CLI_CHUNK")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(1 << 22)
}

/// Whether `path` names an `.npy` file with more than one chunk of values:
/// such inputs are streamed rather than read whole. Any error is left for
/// the reader that follows to report.
pub fn is_large_npy(path: &str) -> bool {
    path.to_ascii_lowercase().ends_with(".npy")
        && NpyChunks::open(path).is_ok_and(|c| c.len() > chunk_len())
}

/// An `.npy` file read in order, a chunk at a time.
pub struct NpyChunks {
    file: BufReader<File>,
    pub path: String,
    kind: Kind,
    pub dims: Vec<usize>,
    count: usize,
    read: usize,
    bytes: Vec<u8>,
    /// Nonzero values that became 0 in f32 so far.
    pub underflowed: usize,
}

impl NpyChunks {
    /// Opens `path` and checks its header and length against the file.
    pub fn open(path: &str) -> Result<NpyChunks> {
        let cannot = |e: std::io::Error| file_error(path, format!("cannot read: {e}"));
        let mut file = File::open(path).map_err(cannot)?;
        let file_len = file.metadata().map_err(cannot)?.len();
        // The magic string, version and length, then the header itself.
        let mut head = Vec::new();
        (&mut file)
            .take(12 + npy::MAX_HEADER as u64)
            .read_to_end(&mut head)
            .map_err(cannot)?;
        let header = npy::parse_header(&head)
            .map_err(|e| file_error(path, format!("not a valid .npy file ({e})")))?;
        let data_len = file_len.saturating_sub(header.data_offset as u64);
        let Layout { kind, dims, count } = layout(path, &header, data_len)?;
        if count == 0 {
            return Err(file_error(path, "has no values"));
        }
        let mut file = BufReader::with_capacity(1 << 20, file);
        std::io::Seek::seek(
            &mut file,
            std::io::SeekFrom::Start(header.data_offset as u64),
        )
        .map_err(cannot)?;
        Ok(NpyChunks {
            file,
            path: path.to_string(),
            kind,
            dims,
            count: count as usize,
            read: 0,
            bytes: Vec::new(),
            underflowed: 0,
        })
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Where the next chunk starts.
    pub fn position(&self) -> usize {
        self.read
    }

    /// The next at most `max` values, as f32, into `out` (replacing what it
    /// held); 0 at the end.
    pub fn next_chunk(&mut self, max: usize, out: &mut Vec<f32>) -> Result<usize> {
        let k = max.min(self.count - self.read);
        out.clear();
        if k == 0 {
            return Ok(0);
        }
        let size = self.kind.size();
        self.bytes.resize(k * size, 0);
        self.file
            .read_exact(&mut self.bytes)
            .map_err(|e| file_error(&self.path, format!("cannot read: {e}")))?;
        out.try_reserve_exact(k)
            .map_err(|_| file_error(&self.path, "cannot allocate a chunk"))?;
        let integer = matches!(self.kind, Kind::I32 | Kind::I64);
        for (i, b) in self.bytes.chunks_exact(size).enumerate() {
            let v = match self.kind {
                Kind::F16 => lossgpu::f16::from_le_bytes([b[0], b[1]]).to_f64(),
                Kind::Bf16 => lossgpu::bf16::from_le_bytes([b[0], b[1]]).to_f64(),
                Kind::F32 => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                Kind::I32 => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
                Kind::F64 => f64::from_le_bytes(b.try_into().unwrap_or([0; 8])),
                Kind::I64 => {
                    let v = i64::from_le_bytes(b.try_into().unwrap_or([0; 8]));
                    if v as f64 as i128 != v as i128 {
                        return Err(self.value_error(i, &v.to_string(), "is not exact in f32"));
                    }
                    v as f64
                }
            };
            let x =
                narrow(v, integer).map_err(|why| self.value_error(i, &format!("{v:?}"), why))?;
            if x == 0.0 && v != 0.0 {
                self.underflowed += 1;
            }
            out.push(x);
        }
        self.read += k;
        Ok(k)
    }

    fn value_error(&self, i: usize, value: &str, why: &str) -> lossgpu::Error {
        let at = io::locate(&self.dims, self.read + i);
        file_error(&self.path, format!("{at} = {value} {why}"))
    }
}

/// An f32 `.npy` output written a chunk at a time, durably ([`Durable`]):
/// the target is replaced only by [`NpyOut::finish`].
pub struct NpyOut {
    file: Durable,
    bytes: Vec<u8>,
    dtype: lossgpu::DType,
}

impl NpyOut {
    /// An `.npy` of `--out-dtype` (f32 by default).
    pub fn create(path: &str, dims: &[usize]) -> Result<NpyOut> {
        let dtype = super::dtypes::out();
        let mut file = Durable::create(path)?;
        file.write(&npy::header(super::dtypes::descr(dtype), dims))?;
        Ok(NpyOut {
            file,
            bytes: Vec::new(),
            dtype,
        })
    }

    pub fn write(&mut self, values: &[f32]) -> Result<()> {
        self.bytes.clear();
        super::dtypes::encode(values, self.dtype, &mut self.bytes);
        self.file.write(&self.bytes)
    }

    pub fn finish(self) -> Result<()> {
        self.file.finish()
    }
}
