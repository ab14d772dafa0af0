//! The `.npy` / `.csv` readers of the binary never panic on malformed bytes
//! (SPEC §4: status 2 and one line on stderr naming the file, never a panic
//! or a backtrace). The readers live in the binary, so every case runs
//! `lossgpu activation relu --input FILE --out OUT.npy --backend cpu`.
//!
//! The binary maps a panic to status 2 with "lossgpu: error: internal
//! error: ...", so "never a panic" is checked on the message too, not only
//! on the status.

mod common;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;
use tempfile::TempDir;

/// What one run of the binary did.
#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stderr: String,
    out: PathBuf,
}

/// Writes `bytes` to `dir/x.EXT` and runs relu on it on the CPU.
fn run_on(dir: &Path, ext: &str, bytes: &[u8]) -> (PathBuf, Outcome) {
    std::fs::create_dir_all(dir).unwrap();
    let input = dir.join(format!("x.{ext}"));
    std::fs::write(&input, bytes).unwrap();
    let outcome = run_path(&input, &dir.join("out.npy"));
    (input, outcome)
}

fn run_path(input: &Path, out: &Path) -> Outcome {
    let output = Command::new(env!("CARGO_BIN_EXE_lossgpu"))
        .args(["activation", "relu", "--input"])
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(["--backend", "cpu"])
        .output()
        .expect("the binary runs");
    Outcome {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out: out.to_path_buf(),
    }
}

/// Status 0 (an output file exists), or status 2 with exactly one line
/// "lossgpu: error: ..." that names the input and is not a caught panic.
/// Returns the error line, if any.
fn assert_clean(label: &str, input: &Path, r: &Outcome) -> Option<String> {
    match r.code {
        Some(0) => {
            assert!(
                r.out.exists(),
                "{label}: status 0 but no output file; stderr {:?}",
                r.stderr
            );
            None
        }
        Some(2) => {
            let lines: Vec<&str> = r.stderr.lines().collect();
            assert_eq!(
                lines.len(),
                1,
                "{label}: exactly one stderr line, got {:?}",
                r.stderr
            );
            let line = lines[0];
            assert!(line.starts_with("lossgpu: error:"), "{label}: {line}");
            assert!(
                !line.contains("internal error") && !line.contains("panicked"),
                "{label}: a panic reached the user: {line}"
            );
            assert!(
                line.contains(&*input.to_string_lossy()),
                "{label}: the message does not name {}: {line}",
                input.display()
            );
            Some(line.to_string())
        }
        other => panic!(
            "{label}: status {other:?} (101 = panic, None = killed by a signal); stderr {:?}",
            r.stderr
        ),
    }
}

/// An npy file: magic, version, little-endian header length (u16 for
/// version 1, u32 otherwise), the dict padded to 64 bytes, then `data`.
fn npy(dict: &str, data: &[u8], version: (u8, u8)) -> Vec<u8> {
    let mut header = dict.to_string();
    let len_bytes = if version.0 == 1 { 2 } else { 4 };
    while !(8 + len_bytes + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let mut bytes = b"\x93NUMPY".to_vec();
    bytes.extend([version.0, version.1]);
    if version.0 == 1 {
        bytes.extend((header.len() as u16).to_le_bytes());
    } else {
        bytes.extend((header.len() as u32).to_le_bytes());
    }
    bytes.extend(header.as_bytes());
    bytes.extend(data);
    bytes
}

fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let order = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {order}, 'shape': {shape}, }}")
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A malformed file that must be refused with a message containing each of
/// `expect` (besides the file name).
struct Bad {
    name: &'static str,
    ext: &'static str,
    bytes: Vec<u8>,
    expect: &'static [&'static str],
}

fn bad_npy(name: &'static str, bytes: Vec<u8>, expect: &'static [&'static str]) -> Bad {
    Bad {
        name,
        ext: "npy",
        bytes,
        expect,
    }
}

fn bad_csv(name: &'static str, bytes: impl Into<Vec<u8>>, expect: &'static [&'static str]) -> Bad {
    Bad {
        name,
        ext: "csv",
        bytes: bytes.into(),
        expect,
    }
}

#[test]
fn named_malformed_inputs_give_a_clear_error() {
    let four = f32_bytes(&[1.0, -2.0, 3.0, -4.0]);
    let valid = npy(&dict("<f4", false, "(4,)"), &four, (1, 0));
    let mut wrong_magic = valid.clone();
    wrong_magic[5] = b'Z';
    let mut flipped_key = valid.clone();
    let at = valid.windows(5).position(|w| w == b"descr").unwrap();
    flipped_key[at + 1] ^= 0x20; // 'descr' -> 'dEscr'
    let mut flipped_brace = valid.clone();
    flipped_brace[10] = b'['; // the dict's '{'
    let mut v1_len_beyond = valid.clone();
    v1_len_beyond[8..10].copy_from_slice(&u16::MAX.to_le_bytes());
    let mut v2_len_beyond = npy(&dict("<f4", false, "(4,)"), &four, (2, 0));
    v2_len_beyond[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
    let mut not_utf8_header = valid.clone();
    not_utf8_header[12] = 0xff;
    let long_token = "x".repeat(1 << 20);

    let cases = vec![
        bad_npy(
            "truncated data",
            npy(&dict("<f4", false, "(10,)"), &four, (1, 0)),
            &["truncated", "10 values"],
        ),
        bad_npy(
            "truncated mid-value",
            valid[..valid.len() - 3].to_vec(),
            &["truncated"],
        ),
        bad_npy(
            "truncated inside the header",
            valid[..40].to_vec(),
            &["not a valid .npy file"],
        ),
        bad_npy("empty file", Vec::new(), &["not a valid .npy file"]),
        bad_npy(
            "magic only",
            b"\x93NUMPY".to_vec(),
            &["not a valid .npy file"],
        ),
        bad_npy("wrong magic", wrong_magic, &["not a valid .npy file"]),
        bad_npy("flipped key", flipped_key, &["not a valid .npy file"]),
        bad_npy("not a dict", flipped_brace, &["not a valid .npy file"]),
        bad_npy(
            "header not utf-8",
            not_utf8_header,
            &["not a valid .npy file"],
        ),
        bad_npy(
            "version 4.0",
            npy(&dict("<f4", false, "(4,)"), &four, (4, 0)),
            &["not a valid .npy file", "version"],
        ),
        bad_npy(
            "version 1.1",
            npy(&dict("<f4", false, "(4,)"), &four, (1, 1)),
            &["not a valid .npy file", "version"],
        ),
        bad_npy(
            "complex64",
            npy(&dict("<c8", false, "(2,)"), &[0; 16], (1, 0)),
            &["not supported"],
        ),
        bad_npy(
            "bool",
            npy(&dict("|b1", false, "(4,)"), &[1, 0, 1, 0], (1, 0)),
            &["not supported"],
        ),
        bad_npy(
            "big-endian f32",
            npy(&dict(">f4", false, "(4,)"), &four, (1, 0)),
            &["big-endian"],
        ),
        bad_npy(
            "unicode",
            npy(&dict("<U2", false, "(1,)"), &[0; 8], (1, 0)),
            &["not supported"],
        ),
        bad_npy(
            "structured",
            npy(
                "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }",
                &four,
                (1, 0),
            ),
            &["structured"],
        ),
        // Headers that made the old parser backtrack exponentially: each is
        // one line, at once.
        bad_npy(
            "descr nested a dozen levels",
            npy(
                &format!(
                    "{{'descr': {}'<f4'{}, 'fortran_order': False, 'shape': (4,), }}",
                    "[".repeat(12),
                    "]".repeat(12)
                ),
                &four,
                (1, 0),
            ),
            &["not a valid .npy file", "structured"],
        ),
        bad_npy(
            "a dict nested a dozen levels",
            npy(
                &format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': {}1{}}}",
                    "{'a': ".repeat(12),
                    "}".repeat(12)
                ),
                &four,
                (1, 0),
            ),
            &["not a valid .npy file", "unknown header key 'x'"],
        ),
        bad_npy(
            "ten thousand levels of nesting",
            npy(
                &format!(
                    "{{'descr': {}'<f4'{}, 'fortran_order': False, 'shape': (4,), }}",
                    "(".repeat(10_000),
                    ")".repeat(10_000)
                ),
                &four,
                (2, 0),
            ),
            &["not a valid .npy file", "10000-byte limit"],
        ),
        // 2.8 s with the old parser at 12 levels, three times more per level.
        bad_npy(
            "a set nested a dozen levels",
            npy(
                &format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'x': {}1{}}}",
                    "{".repeat(12),
                    "}".repeat(12)
                ),
                &four,
                (1, 0),
            ),
            &["not a valid .npy file"],
        ),
        bad_npy(
            "a shape nested twenty levels",
            npy(
                &format!(
                    "{{'descr': '<f4', 'fortran_order': False, 'shape': {}(4,){}, }}",
                    "[".repeat(20),
                    "]".repeat(20)
                ),
                &four,
                (1, 0),
            ),
            &["not a valid .npy file", "nested deeper"],
        ),
        bad_npy(
            "duplicate key",
            npy(
                "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }",
                &four,
                (1, 0),
            ),
            &["not a valid .npy file", "twice"],
        ),
        bad_npy(
            "fortran order 2-D",
            npy(&dict("<f4", true, "(2, 2)"), &four, (1, 0)),
            &["Fortran"],
        ),
        bad_npy(
            "absurd shape",
            npy(&dict("<f4", false, "(99999999999,)"), &four, (1, 0)),
            &["truncated", "99999999999"],
        ),
        bad_npy(
            // 2^63 + 1 rows of 2: the element count overflows u64 (a
            // wrapping product would make it 2 and accept the file).
            "shape overflowing u64",
            npy(
                &dict("<f4", false, "(9223372036854775809, 2)"),
                &f32_bytes(&[1.0, 2.0]),
                (1, 0),
            ),
            &["shape has more elements"],
        ),
        bad_npy(
            "shape overflowing u64 to 0",
            npy(
                &dict("<f4", false, "(4294967296, 4294967296)"),
                &four,
                (1, 0),
            ),
            &["shape has more elements"],
        ),
        bad_npy(
            "negative shape",
            npy(&dict("<f4", false, "(-4,)"), &four, (1, 0)),
            &["not a valid .npy file", "negative"],
        ),
        bad_npy(
            "garbage shape",
            npy(&dict("<f4", false, "('four',)"), &four, (1, 0)),
            &["not a valid .npy file"],
        ),
        bad_npy(
            "float shape",
            npy(&dict("<f4", false, "(4.0,)"), &four, (1, 0)),
            &["not a valid .npy file"],
        ),
        bad_npy(
            "shape beyond u64",
            npy(
                &dict("<f4", false, "(123456789012345678901234567890,)"),
                &four,
                (1, 0),
            ),
            &["not a valid .npy file"],
        ),
        bad_npy(
            "three dimensions",
            npy(&dict("<f4", false, "(1, 2, 2)"), &four, (1, 0)),
            &["3 dimensions"],
        ),
        bad_npy(
            "zero elements",
            npy(&dict("<f4", false, "(0,)"), &[], (1, 0)),
            &["no values"],
        ),
        bad_npy(
            "v1 header length beyond the file",
            v1_len_beyond,
            &["not a valid .npy file"],
        ),
        bad_npy(
            "v2 header length 4 GiB",
            v2_len_beyond,
            &["not a valid .npy file"],
        ),
        bad_npy(
            "int64 not exact in f32",
            npy(
                &dict("<i8", false, "(1,)"),
                &((1i64 << 53) + 1).to_le_bytes(),
                (1, 0),
            ),
            &["[0]", "9007199254740993", "not exact in f32"],
        ),
        bad_npy(
            "int64 2^24 + 1",
            npy(
                &dict("<i8", false, "(2,)"),
                &[0i64.to_le_bytes(), ((1i64 << 24) + 1).to_le_bytes()].concat(),
                (1, 0),
            ),
            &["[1]", "16777217", "not exact in f32"],
        ),
        bad_npy(
            "int64 max in 2-D",
            npy(
                &dict("<i8", false, "(1, 2)"),
                &[1i64.to_le_bytes(), i64::MAX.to_le_bytes()].concat(),
                (1, 0),
            ),
            &["[0, 1]", "9223372036854775807", "not exact in f32"],
        ),
        bad_npy(
            "f64 beyond f32",
            npy(&dict("<f8", false, "(1,)"), &1e300f64.to_le_bytes(), (1, 0)),
            &["outside the f32 range"],
        ),
        bad_csv("text", "1\nhello\n", &["line 2", "'hello'", "not a number"]),
        bad_csv("blank lines only", "\n   \n\t\n\r\n", &["no values"]),
        bad_csv("empty file", "", &["no values"]),
        bad_csv(
            "ragged rows",
            "1,2\n3,4\n5\n",
            &["line 3", "first row has 2"],
        ),
        bad_csv("empty field", "1,,2\n", &["line 1", "not a number"]),
        bad_csv("trailing comma", "1,2,\n", &["line 1", "not a number"]),
        bad_csv("f32 overflow", "1\n1e39\n", &["outside the f32 range"]),
        bad_csv(
            "very long token",
            format!("1\n{long_token}\n"),
            &["line 2", "not a number"],
        ),
        bad_csv(
            "invalid utf-8",
            vec![b'1', b'\n', 0xff, 0xfe, b'2', b'\n'],
            &["not UTF-8"],
        ),
        bad_csv("lone continuation byte", vec![0x80], &["not UTF-8"]),
        bad_csv(
            "valid utf-8 that is not a number",
            "1\n\u{0663}\u{0664}\n",
            &["line 2", "not a number"],
        ),
        bad_csv("nul byte", "1\n\0\n", &["line 2", "not a number"]),
        bad_csv("hex", "0x10\n", &["not a number"]),
    ];

    let dir = TempDir::new().unwrap();
    for (k, case) in cases.iter().enumerate() {
        let label = format!("{} ({}.{})", case.name, k, case.ext);
        let (input, r) = run_on(&dir.path().join(format!("case{k}")), case.ext, &case.bytes);
        let line = assert_clean(&label, &input, &r)
            .unwrap_or_else(|| panic!("{label}: accepted, but it is malformed"));
        assert!(
            line.len() < 400,
            "{label}: the message is {} characters long",
            line.len()
        );
        for want in case.expect {
            assert!(line.contains(want), "{label}: {line:?} lacks {want:?}");
        }
    }

    // A missing file and a directory are errors that name them.
    std::fs::create_dir(dir.path().join("dir.csv")).unwrap();
    for input in [dir.path().join("missing.csv"), dir.path().join("dir.csv")] {
        let r = run_path(&input, &dir.path().join("o.npy"));
        let line = assert_clean("unreadable", &input, &r).expect("an error");
        assert!(line.contains("cannot read"), "{line}");
    }
}

/// f32 values of an output file.
fn read_out(path: &Path) -> (Vec<f32>, Vec<u64>) {
    let bytes = std::fs::read(path).unwrap();
    let npy = npyz::NpyFile::new(&bytes[..]).unwrap();
    let shape = npy.shape().to_vec();
    (npy.into_vec::<f32>().unwrap(), shape)
}

#[test]
fn odd_but_valid_inputs_are_read() {
    let dir = TempDir::new().unwrap();
    let four = f32_bytes(&[1.0, -2.0, 3.0, -4.0]);
    let wide: Vec<String> = (0..200_000)
        .map(|i| format!("{}", i as f32 - 1e5))
        .collect();
    // (name, extension, bytes, values of relu, shape)
    type Valid = (&'static str, &'static str, Vec<u8>, Vec<f32>, Vec<u64>);
    let cases: Vec<Valid> = vec![
        (
            "version 2.0",
            "npy",
            npy(&dict("<f4", false, "(4,)"), &four, (2, 0)),
            vec![1.0, 0.0, 3.0, 0.0],
            vec![4],
        ),
        (
            // NumPy's format 3.0 (utf-8 header) is still an npy file.
            "version 3.0",
            "npy",
            npy(&dict("<f4", false, "(2, 2)"), &four, (3, 0)),
            vec![1.0, 0.0, 3.0, 0.0],
            vec![2, 2],
        ),
        (
            "1-D fortran order (same layout)",
            "npy",
            npy(&dict("<f4", true, "(4,)"), &four, (1, 0)),
            vec![1.0, 0.0, 3.0, 0.0],
            vec![4],
        ),
        (
            "scalar, trailing bytes ignored",
            "npy",
            npy(
                &dict("<f8", false, "()"),
                &[&(-2.5f64).to_le_bytes()[..], b"junk"].concat(),
                (1, 0),
            ),
            vec![0.0],
            vec![1],
        ),
        (
            "NaN and inf strings",
            "csv",
            b"nan\nNaN\ninf\n-inf\n+infinity\n-0\n".to_vec(),
            vec![f32::NAN, f32::NAN, f32::INFINITY, 0.0, f32::INFINITY, 0.0],
            vec![6],
        ),
        (
            "BOM, CRLF, blanks and spaces",
            "csv",
            "\u{feff}1 , -2\r\n\r\n 3,4 \r\n".as_bytes().to_vec(),
            vec![1.0, 0.0, 3.0, 4.0],
            vec![2, 2],
        ),
        (
            "one very long row",
            "csv",
            wide.join(",").into_bytes(),
            (0..200_000).map(|i| (i as f32 - 1e5).max(0.0)).collect(),
            vec![1, 200_000],
        ),
    ];
    for (k, (name, ext, bytes, want, shape)) in cases.into_iter().enumerate() {
        let (input, r) = run_on(&dir.path().join(format!("ok{k}")), ext, &bytes);
        assert!(
            assert_clean(name, &input, &r).is_none(),
            "{name}: refused: {}",
            r.stderr
        );
        let (got, got_shape) = read_out(&r.out);
        assert_eq!(got_shape, shape, "{name}: shape");
        assert_eq!(got.len(), want.len(), "{name}: length");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w || (g.is_nan() && w.is_nan()),
                "{name}: [{i}] = {g}, want {w}"
            );
        }
    }
}

/// Pieces of npy headers, spliced into otherwise valid files.
const NPY_TOKENS: [&str; 28] = [
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ",",
    ":",
    " ",
    "'",
    "\"",
    "'descr'",
    "'shape'",
    "'fortran_order'",
    "'<f4'",
    "'<f8'",
    "'<i8'",
    "'>f4'",
    "'|b1'",
    "True",
    "False",
    "None",
    "-1",
    "0",
    "7",
    "99999999999",
    "18446744073709551616",
    "0x10",
];

/// Pieces of csv files.
const CSV_TOKENS: [&str; 30] = [
    "1", "-2.5", "3e7", "1e39", "-1e-45", "0", "-0", "nan", "NaN", "inf", "-inf", "infinity",
    "abc", "", " ", "\t", ",", ",,", "\n", "\r\n", "\n\n", "\u{feff}", "é", "\u{202e}", "１", "+",
    "-", "e", ".", "1_0",
];

fn random_npy(rng: &mut StdRng) -> Vec<u8> {
    let descr = ["<f4", "<f8", "<i4", "<i8"][rng.random_range(0..4)];
    let (shape, n) = if rng.random::<bool>() {
        let n = rng.random_range(0..20usize);
        (format!("({n},)"), n)
    } else {
        let (r, c) = (rng.random_range(0..6usize), rng.random_range(1..6usize));
        (format!("({r}, {c})"), r * c)
    };
    // Values of the dtype that read back (the mutations below corrupt them).
    let data: Vec<u8> = (0..n)
        .flat_map(|_| {
            let x: f64 = rng.random_range(-1e3..1e3);
            match descr {
                "<f4" => (x as f32).to_le_bytes().to_vec(),
                "<f8" => x.to_le_bytes().to_vec(),
                "<i4" => (x as i32).to_le_bytes().to_vec(),
                _ => (x as i64).to_le_bytes().to_vec(),
            }
        })
        .collect();
    let version = [(1, 0), (2, 0), (3, 0)][rng.random_range(0..3)];
    let mut bytes = npy(
        &dict(descr, rng.random_range(0..4) == 0, &shape),
        &data,
        version,
    );
    let header_end = bytes.len() - data.len();
    // No mutation at all a quarter of the time: valid files must pass.
    for _ in 0..rng.random_range(0..4) {
        match rng.random_range(0..7) {
            // flip bits anywhere
            // (a file truncated to nothing has no bit to flip)
            0 if !bytes.is_empty() => {
                for _ in 0..rng.random_range(1..5) {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
            }
            0 => {}
            // overwrite a header byte with anything
            1 => {
                let i = rng.random_range(0..header_end.min(bytes.len()).max(1));
                if i < bytes.len() {
                    bytes[i] = rng.random();
                }
            }
            // truncate
            2 => {
                let keep = rng.random_range(0..=bytes.len());
                bytes.truncate(keep);
            }
            // append garbage
            3 => bytes.extend((0..rng.random_range(1..64)).map(|_| rng.random::<u8>())),
            // splice header tokens into the dict
            4 => {
                let lo = 10.min(bytes.len());
                let hi = header_end.min(bytes.len()).max(lo);
                let i = rng.random_range(lo..=hi);
                let tok = NPY_TOKENS[rng.random_range(0..NPY_TOKENS.len())];
                bytes.splice(i..i, tok.bytes());
            }
            // random header length field
            5 => {
                if bytes.len() >= 10 {
                    let v: u16 = rng.random();
                    bytes[8..10].copy_from_slice(&v.to_le_bytes());
                }
            }
            // random version
            _ => {
                if bytes.len() >= 8 {
                    bytes[6] = rng.random_range(0..5);
                    bytes[7] = rng.random_range(0..2);
                }
            }
        }
    }
    bytes
}

fn random_csv(rng: &mut StdRng) -> Vec<u8> {
    let mut text = String::new();
    for _ in 0..rng.random_range(0..40) {
        text.push_str(CSV_TOKENS[rng.random_range(0..CSV_TOKENS.len())]);
        if rng.random_range(0..3) == 0 {
            text.push(if rng.random::<bool>() { ',' } else { '\n' });
        }
    }
    let mut bytes = text.into_bytes();
    if rng.random_range(0..6) == 0 && !bytes.is_empty() {
        let i = rng.random_range(0..bytes.len());
        bytes[i] = rng.random(); // possibly invalid UTF-8
    }
    bytes
}

#[test]
fn random_bytes_never_panic_the_readers() {
    let mut seeds = common::rng("readers");
    let cases: Vec<(String, &str, Vec<u8>)> = (0..300)
        .map(|k| {
            let seed: u64 = seeds.random();
            let mut rng = StdRng::seed_from_u64(seed);
            let (ext, bytes) = match k % 6 {
                0 => (
                    "npy",
                    (0..rng.random_range(0..300))
                        .map(|_| rng.random())
                        .collect(),
                ),
                1 => (
                    "csv",
                    (0..rng.random_range(0..300))
                        .map(|_| rng.random())
                        .collect(),
                ),
                2 | 3 => ("npy", random_npy(&mut rng)),
                _ => ("csv", random_csv(&mut rng)),
            };
            (format!("case {k} (seed {seed})"), ext, bytes)
        })
        .collect();
    let dir = TempDir::new().unwrap();
    let accepted = std::sync::atomic::AtomicUsize::new(0);
    // Two workers: each run is a short process, and there are two cores.
    std::thread::scope(|s| {
        for w in 0..2 {
            let (cases, dir, accepted) = (&cases, dir.path(), &accepted);
            s.spawn(move || {
                for (k, (label, ext, bytes)) in cases.iter().enumerate().skip(w).step_by(2) {
                    let (input, r) = run_on(&dir.join(format!("r{k}")), ext, bytes);
                    if assert_clean(label, &input, &r).is_none() {
                        accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // Some mutants are still valid files; most are not. Both kinds ran.
    let accepted = accepted.into_inner();
    eprintln!("random readers: {accepted} of {} accepted", cases.len());
    assert!(
        accepted > 0 && accepted < cases.len(),
        "{accepted} accepted"
    );
}
