//! The `.npy` format without a general Python-literal parser. The header is
//! one dict with three known keys, so it is read in a single pass over at
//! most [`MAX_HEADER`] bytes, with nesting capped at [`MAX_DEPTH`]: a hostile
//! header costs time linear in its length and is one clear error.

use std::fmt::Display;

/// The longest header accepted, as numpy's own reader (`max_header_size`).
pub const MAX_HEADER: usize = 10_000;
/// The deepest nesting of brackets accepted in a header; a valid one has 1
/// (the shape tuple inside the dict) or 2 (a structured dtype's list).
pub const MAX_DEPTH: usize = 16;
/// The longest piece of a file quoted in a message.
const QUOTE: usize = 40;

const MAGIC: &[u8] = b"\x93NUMPY";

/// What the header says.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// The dtype, e.g. `<f4`.
    pub descr: String,
    pub fortran_order: bool,
    pub shape: Vec<u64>,
    /// Where the data starts.
    pub data_offset: usize,
}

/// A value of the header's Python literal.
#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Str(String),
    Bool(bool),
    None,
    Int(i128),
    Float,
    Tuple(Vec<Literal>),
    List(Vec<Literal>),
    Dict(Vec<(Literal, Literal)>),
}

/// Quotes at most [`QUOTE`] characters of `s`, marking a cut.
fn quote(s: &str) -> String {
    let mut q: String = s.chars().take(QUOTE).collect();
    if q.len() < s.len() {
        q.push('…');
    }
    q
}

/// A one-pass recursive-descent reader of the literal subset numpy writes;
/// it never backtracks, and every step consumes input or fails.
struct Parser<'a> {
    text: &'a str,
    at: usize,
}

type Parsed<T> = std::result::Result<T, String>;

impl<'a> Parser<'a> {
    fn fail<T>(&self, what: impl Display) -> Parsed<T> {
        Err(format!("{what} at byte {} of the header", self.at))
    }

    fn skip_space(&mut self) {
        let rest = &self.text[self.at..];
        self.at += rest.len() - rest.trim_start().len();
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.at..].chars().next()
    }

    fn eat(&mut self, c: char) -> bool {
        if self.peek() == Some(c) {
            self.at += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Parsed<Literal> {
        if depth > MAX_DEPTH {
            return self.fail(format!("brackets nested deeper than {MAX_DEPTH} levels"));
        }
        match self.peek() {
            Some('{') => self.dict(depth + 1),
            Some('(') => self.sequence(')', depth + 1).map(Literal::Tuple),
            Some('[') => self.sequence(']', depth + 1).map(Literal::List),
            Some(q @ ('\'' | '"')) => self.string(q),
            Some(c) if c == '-' || c == '+' || c.is_ascii_digit() || c == '.' => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == '_' => self.word(),
            Some(c) => self.fail(format!("unexpected '{c}'")),
            None => self.fail("the header ends inside a value"),
        }
    }

    /// `(a, b, …)` or `[a, b, …]`, a trailing comma allowed.
    fn sequence(&mut self, close: char, depth: usize) -> Parsed<Vec<Literal>> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.value(depth)?);
            if !self.eat(',') && self.peek() != Some(close) {
                return self.unclosed(close);
            }
        }
    }

    fn unclosed<T>(&mut self, close: char) -> Parsed<T> {
        match self.peek() {
            None => self.fail(format!("the header ends before a closing '{close}'")),
            Some(_) => self.fail(format!("expected ',' or '{close}'")),
        }
    }

    fn dict(&mut self, depth: usize) -> Parsed<Literal> {
        self.at += 1;
        let mut items = Vec::new();
        loop {
            if self.eat('}') {
                return Ok(Literal::Dict(items));
            }
            let key = self.value(depth)?;
            if !self.eat(':') {
                return self.fail("expected ':' after a key");
            }
            items.push((key, self.value(depth)?));
            if !self.eat(',') && self.peek() != Some('}') {
                return self.unclosed('}');
            }
        }
    }

    /// A quoted string without escapes (numpy writes none in a header).
    fn string(&mut self, q: char) -> Parsed<Literal> {
        let start = self.at + 1;
        match self.text[start..].find([q, '\\', '\n']) {
            Some(len) if self.text[start + len..].starts_with(q) => {
                self.at = start + len + 1;
                Ok(Literal::Str(self.text[start..start + len].to_string()))
            }
            Some(_) => self.fail("an escape or a line break inside a string"),
            None => self.fail("an unterminated string"),
        }
    }

    fn number(&mut self) -> Parsed<Literal> {
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || "+-._".contains(c)))
            .unwrap_or(rest.len());
        let token = &rest[..len];
        self.at += len;
        let digits = token.trim_start_matches(['-', '+']);
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return match token.parse::<i128>() {
                Ok(v) => Ok(Literal::Int(v)),
                Err(_) => self.fail(format!("the integer {} is too large", quote(token))),
            };
        }
        if token.parse::<f64>().is_ok() {
            return Ok(Literal::Float);
        }
        self.fail(format!("'{}' is not a number", quote(token)))
    }

    fn word(&mut self) -> Parsed<Literal> {
        let rest = &self.text[self.at..];
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        self.at += len;
        match word {
            "True" => Ok(Literal::Bool(true)),
            "False" => Ok(Literal::Bool(false)),
            "None" => Ok(Literal::None),
            _ => self.fail(format!("unexpected name '{}'", quote(word))),
        }
    }
}

/// Reads the magic string, version, header length and header dict of an
/// `.npy` file. Every failure is a short message (no file name: the caller
/// adds it).
pub fn parse_header(bytes: &[u8]) -> Parsed<Header> {
    if bytes.len() < 10 || !bytes.starts_with(MAGIC) {
        return Err(if bytes.starts_with(MAGIC) || MAGIC.starts_with(bytes) {
            "the file ends before its header length".to_string()
        } else {
            "it does not start with the .npy magic string".to_string()
        });
    }
    let (len, start) = match (bytes[6], bytes[7]) {
        (1, 0) => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        (2, 0) | (3, 0) if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        (2, 0) | (3, 0) => return Err("the file ends before its header length".into()),
        (major, minor) => {
            return Err(format!(
                "format version {major}.{minor} is not supported (1.0, 2.0 or 3.0)"
            ))
        }
    };
    if len > MAX_HEADER {
        return Err(format!(
            "a header of {len} bytes is longer than the {MAX_HEADER}-byte limit"
        ));
    }
    if start + len > bytes.len() {
        return Err(format!(
            "the header length {len} runs past the end of the file ({} bytes)",
            bytes.len()
        ));
    }
    let text = std::str::from_utf8(&bytes[start..start + len])
        .map_err(|_| "the header is not UTF-8 text".to_string())?;
    let mut parser = Parser { text, at: 0 };
    let dict = match parser.peek() {
        Some('{') => parser.value(0)?,
        _ => return Err("the header is not a dict".into()),
    };
    parser.skip_space();
    if parser.at != text.len() {
        return parser.fail("text after the header dict");
    }
    let Literal::Dict(items) = dict else {
        return Err("the header is not a dict".into());
    };
    header_from(items, start + len)
}

fn header_from(items: Vec<(Literal, Literal)>, data_offset: usize) -> Parsed<Header> {
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    for (key, value) in items {
        let Literal::Str(key) = key else {
            return Err("a header key is not a string".into());
        };
        let slot = match key.as_str() {
            "descr" => &mut descr,
            "fortran_order" => &mut fortran,
            "shape" => &mut shape,
            other => return Err(format!("unknown header key '{}'", quote(other))),
        };
        if slot.replace(value).is_some() {
            return Err(format!("the header key '{key}' appears twice"));
        }
    }
    let missing = |k: &str| format!("the header has no '{k}' key");
    let descr = match descr.ok_or_else(|| missing("descr"))? {
        Literal::Str(s) => s,
        Literal::List(_) => {
            return Err("structured dtype (a list of fields) is not supported".into())
        }
        _ => return Err("'descr' is not a dtype string".into()),
    };
    let Literal::Bool(fortran_order) = fortran.ok_or_else(|| missing("fortran_order"))? else {
        return Err("'fortran_order' is not True or False".into());
    };
    let Literal::Tuple(dims) = shape.ok_or_else(|| missing("shape"))? else {
        return Err("'shape' is not a tuple".into());
    };
    let shape = dims
        .into_iter()
        .map(|d| match d {
            Literal::Int(v) if v < 0 => Err(format!("the shape has a negative dimension {v}")),
            Literal::Int(v) => u64::try_from(v)
                .map_err(|_| format!("the dimension {v} is larger than a 64-bit count")),
            _ => Err("the shape holds something other than integers".into()),
        })
        .collect::<Parsed<Vec<u64>>>()?;
    Ok(Header {
        descr,
        fortran_order,
        shape,
        data_offset,
    })
}

/// A version 1.0 header for little-endian f32 data of `dims`, padded with
/// spaces to a multiple of 64 bytes as numpy writes it.
pub fn header(descr: &str, dims: &[usize]) -> Vec<u8> {
    let shape = match dims {
        [n] => format!("({n},)"),
        _ => format!(
            "({})",
            dims.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
    let unpadded = MAGIC.len() + 4 + dict.len() + 1;
    dict.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    dict.push('\n');
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn file(dict: &str) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        out.extend_from_slice(dict.as_bytes());
        out
    }

    #[test]
    fn a_numpy_header_parses() {
        let h = parse_header(&file(
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }      \n",
        ))
        .unwrap();
        assert_eq!(h.descr, "<f4");
        assert!(!h.fortran_order);
        assert_eq!(h.shape, vec![3, 4]);
        let scalar = parse_header(&file(
            "{'descr': '<f8', 'fortran_order': True, 'shape': ()}",
        ));
        assert_eq!(scalar.unwrap().shape, Vec::<u64>::new());
    }

    #[test]
    fn the_writer_s_header_reads_back() {
        for dims in [vec![1], vec![7], vec![3, 5], vec![123456789, 2]] {
            let bytes = header("<f4", &dims);
            assert_eq!(bytes.len() % 64, 0);
            let h = parse_header(&bytes).unwrap();
            assert_eq!(h.data_offset, bytes.len());
            let want: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
            assert_eq!((h.descr.as_str(), h.shape), ("<f4", want));
        }
    }

    #[test]
    fn ten_thousand_levels_of_nesting_are_rejected_at_once() {
        for (open, close) in [("[", "]"), ("(", ")"), ("{'a': ", "}")] {
            let deep = format!(
                "{{'descr': {}'<f4'{}, 'fortran_order': False, 'shape': (1,)}}",
                open.repeat(10_000),
                close.repeat(10_000)
            );
            // Past the 10 000-byte cap: rejected before any parsing.
            let start = Instant::now();
            let mut bytes = MAGIC.to_vec();
            bytes.extend_from_slice(&[2, 0]);
            bytes.extend_from_slice(&(deep.len() as u32).to_le_bytes());
            bytes.extend_from_slice(deep.as_bytes());
            let e = parse_header(&bytes).unwrap_err();
            assert!(e.contains("limit"), "{e}");
            // Within the cap, 1 000 levels: the depth limit stops it.
            let deep = format!(
                "{{'descr': {}'<f4'{}}}",
                open.repeat(1000),
                close.repeat(1000)
            );
            let e = parse_header(&file(&deep)).unwrap_err();
            assert!(e.contains("nested deeper"), "{e}");
            assert!(
                start.elapsed() < Duration::from_millis(100),
                "{:?}",
                start.elapsed()
            );
        }
    }

    #[test]
    fn bad_headers_are_one_short_message() {
        let cases = [
            ("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", "twice"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", "unknown"),
            ("{'descr': '<f4', 'shape': (1,)}", "fortran_order"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,)}", "structured"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", "negative"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}", "integers"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", "True or False"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", "after"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", "ends"),
            ("['descr']", "not a dict"),
            ("{'descr: 1}", "unterminated"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999999999999999999999,)}", "too large"),
        ];
        for (dict, want) in cases {
            let e = parse_header(&file(dict)).unwrap_err();
            assert!(e.contains(want), "{dict}: {e}");
            assert!(e.len() < 200, "{e}");
        }
        let long = format!("{{'{}': 1}}", "k".repeat(5000));
        let e = parse_header(&file(&long)).unwrap_err();
        assert!(e.len() < 200, "{e}");
        assert!(parse_header(b"\x93NUMPY\x01").is_err());
        assert!(parse_header(b"\x93NUMPY\x04\x00\x00\x00")
            .unwrap_err()
            .contains("4.0"));
        let mut past = file("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}");
        past.truncate(past.len() - 5);
        assert!(parse_header(&past).unwrap_err().contains("runs past"));
    }

    /// Headers built from the pieces an attacker would combine: brackets of
    /// every kind, open or closed, strings, numbers, names, separators.
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("{".to_string()),
            Just("}".to_string()),
            Just("(".to_string()),
            Just(")".to_string()),
            Just("[".to_string()),
            Just("]".to_string()),
            Just(",".to_string()),
            Just(":".to_string()),
            Just("'descr'".to_string()),
            Just("'shape'".to_string()),
            Just("'<f4'".to_string()),
            Just("True".to_string()),
            Just("\"".to_string()),
            "[0-9]{1,30}",
            "-?[0-9]{1,3}\\.[0-9]",
            "[a-z]{1,8}",
            " {0,3}",
        ];
        prop::collection::vec(piece, 0..400).prop_map(|p| p.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn hostile_headers_fail_fast_and_cleanly(dict in hostile()) {
            let start = Instant::now();
            let outcome = parse_header(&file(&dict));
            prop_assert!(start.elapsed() < Duration::from_millis(50));
            if let Err(e) = outcome {
                prop_assert!(e.len() < 200, "{}", e);
            }
        }

        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&bytes);
            let _ = parse_header(&bytes);
            let _ = parse_header(&with_magic);
        }
    }
}
