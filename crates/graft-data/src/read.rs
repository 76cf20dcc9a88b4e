//! Line-oriented text reading shared by every loader: encodings, quoted
//! fields, strict/lenient handling of bad lines, and the load report.

use std::borrow::Cow;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// How a file's bytes are turned into text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// UTF-8; invalid byte sequences are a parse error naming the line.
    Utf8,
    /// ISO-8859-1 (MovieLens `u.item`/`movies.dat`, BookCrossing): every byte is a character.
    Latin1,
}

/// What to do with a line that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParseMode {
    /// The first bad line is an error (the default).
    #[default]
    Strict,
    /// Bad lines are skipped and counted in the [`LoadReport`]; needed for
    /// raw BookCrossing, whose files contain known malformed lines.
    Lenient,
}

/// A line that was skipped in lenient mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    /// The file.
    pub path: PathBuf,
    /// 1-based line number.
    pub line: usize,
    /// Why it was skipped.
    pub reason: String,
}

/// What a loader read, skipped and could not match.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadReport {
    /// Files read, in order.
    pub files: Vec<PathBuf>,
    /// Lines parsed successfully, header lines included (all files).
    pub lines_parsed: usize,
    /// Lines skipped in lenient mode (all files).
    pub lines_skipped: usize,
    /// The first [`LoadReport::MAX_EXAMPLES`] skipped lines.
    pub skipped_examples: Vec<SkippedLine>,
    /// Side-information rows (items, users) whose id has no interaction; they are dropped.
    pub side_info_unmatched: usize,
    /// Interacting users/items that have no side-information row.
    pub side_info_missing: usize,
}

impl LoadReport {
    /// How many skipped lines are kept as examples.
    pub const MAX_EXAMPLES: usize = 20;

    fn skip(&mut self, path: &Path, line: usize, reason: String) {
        self.lines_skipped += 1;
        if self.skipped_examples.len() < Self::MAX_EXAMPLES {
            self.skipped_examples.push(SkippedLine {
                path: path.to_path_buf(),
                line,
                reason,
            });
        }
    }
}

/// Reads `path` line by line, calling `f(line_no, text)` for every non-blank
/// line. `f` returns `Err(reason)` for a bad line: in strict mode that becomes
/// [`DataError::Parse`], in lenient mode the line is skipped and recorded.
/// A file without any non-blank line is [`DataError::EmptyFile`].
pub(crate) fn for_each_line(
    path: &Path,
    encoding: Encoding,
    mode: ParseMode,
    report: &mut LoadReport,
    mut f: impl FnMut(usize, &str) -> std::result::Result<(), String>,
) -> Result<()> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    report.files.push(path.to_path_buf());
    let mut buf = Vec::with_capacity(256);
    let mut line_no = 0usize;
    let mut any = false;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        line_no += 1;
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text: Cow<'_, str> = match encoding {
            Encoding::Utf8 => match std::str::from_utf8(&buf) {
                Ok(s) => Cow::Borrowed(s),
                Err(e) => {
                    let reason = format!(
                        "invalid UTF-8 at byte {} of the line (is the file latin-1?)",
                        e.valid_up_to()
                    );
                    handle(path, line_no, reason, mode, report)?;
                    any = true;
                    continue;
                }
            },
            Encoding::Latin1 => Cow::Owned(buf.iter().map(|&b| b as char).collect()),
        };
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        if text.trim().is_empty() {
            continue;
        }
        any = true;
        match f(line_no, text) {
            Ok(()) => report.lines_parsed += 1,
            Err(reason) => handle(path, line_no, reason, mode, report)?,
        }
    }
    if !any {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Like [`for_each_line`] for files whose first non-blank line is a header.
/// `header(line)` checks it and returns what the rows need (e.g. column
/// positions); a bad header is an error in **both** modes, since skipping it
/// would misread every line after it. A later line equal to the header is a
/// "repeated header line" (per mode). `row(&columns, line)` parses the rest.
pub(crate) fn for_each_line_after_header<T>(
    path: &Path,
    encoding: Encoding,
    mode: ParseMode,
    report: &mut LoadReport,
    header: impl FnOnce(&str) -> std::result::Result<T, String>,
    mut row: impl FnMut(&T, &str) -> std::result::Result<(), String>,
) -> Result<()> {
    let mut header = Some(header);
    let mut state: Option<(T, String)> = None;
    let mut header_error: Option<(usize, String)> = None;
    for_each_line(path, encoding, mode, report, |no, line| {
        if header_error.is_some() {
            return Ok(());
        }
        let Some((cols, header_line)) = &state else {
            let check = header.take().ok_or("header already consumed")?;
            return match check(line) {
                Ok(cols) => {
                    state = Some((cols, line.trim().to_owned()));
                    Ok(())
                }
                Err(reason) => {
                    header_error = Some((no, reason.clone()));
                    Err(reason)
                }
            };
        };
        if line.trim() == header_line {
            return Err("repeated header line".into());
        }
        row(cols, line)
    })?;
    match header_error {
        Some((line, reason)) => Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        }),
        None => Ok(()),
    }
}

fn handle(
    path: &Path,
    line: usize,
    reason: String,
    mode: ParseMode,
    report: &mut LoadReport,
) -> Result<()> {
    match mode {
        ParseMode::Strict => Err(DataError::Parse {
            path: path.to_path_buf(),
            line,
            reason,
        }),
        ParseMode::Lenient => {
            report.skip(path, line, reason);
            Ok(())
        }
    }
}

/// Splits a delimited line into fields, honouring double-quoted fields with
/// `""` as an escaped quote (RFC 4180 within one line). A quote inside an
/// unquoted field is kept literally.
///
/// # Errors
/// An unterminated quoted field, or text between a closing quote and the
/// next delimiter.
pub fn split_quoted(line: &str, delim: char) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => return Err(format!("unterminated quoted field {}", fields.len() + 1)),
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(c) if c == delim => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "unexpected {c:?} after the closing quote of field {}",
                        fields.len() + 1
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field);
                        return Ok(fields);
                    }
                    Some(c) if c == delim => {
                        fields.push(field);
                        break;
                    }
                    Some(c) => field.push(c),
                }
            }
        }
    }
}

/// Splits on a plain (unquoted) separator and checks the field count.
pub(crate) fn split_exact<'a>(
    line: &'a str,
    sep: &str,
    expected: usize,
) -> std::result::Result<Vec<&'a str>, String> {
    let fields: Vec<&str> = line.split(sep).collect();
    if fields.len() != expected {
        return Err(format!(
            "expected {expected} {sep:?}-separated fields, found {}",
            fields.len()
        ));
    }
    Ok(fields)
}

/// Checks the field count of an already split line.
pub(crate) fn expect_fields<T>(fields: &[T], expected: usize) -> std::result::Result<(), String> {
    if fields.len() != expected {
        return Err(format!(
            "expected {expected} fields, found {}",
            fields.len()
        ));
    }
    Ok(())
}

/// Parses a non-empty id token.
pub(crate) fn parse_id<'a>(s: &'a str, what: &str) -> std::result::Result<&'a str, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err(format!("empty {what}"));
    }
    Ok(s)
}

/// Parses an integer id (MovieLens and P5 ids are integers): ASCII digits
/// only, so `+1` (which `u64::from_str` accepts) is not a second spelling of `1`.
pub(crate) fn parse_int_id<'a>(s: &'a str, what: &str) -> std::result::Result<&'a str, String> {
    let t = parse_id(s, what)?;
    if !t.bytes().all(|b| b.is_ascii_digit()) || t.parse::<u64>().is_err() {
        return Err(format!("{what} {t:?} is not a non-negative integer"));
    }
    Ok(t)
}

/// Parses a finite rating.
pub(crate) fn parse_rating(s: &str) -> std::result::Result<f32, String> {
    let t = s.trim();
    match t.parse::<f32>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("rating {t:?} is not a finite number")),
    }
}

/// Parses an integer Unix timestamp (seconds); a float with no fractional part is accepted.
pub(crate) fn parse_timestamp(s: &str) -> std::result::Result<i64, String> {
    let t = s.trim();
    if let Ok(v) = t.parse::<i64>() {
        return Ok(v);
    }
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v.fract() == 0.0 && v.abs() < 9.0e15 => Ok(v as i64),
        _ => Err(format!("timestamp {t:?} is not an integer")),
    }
}

/// Writes a file atomically: the contents go to a temporary file in the same
/// folder, which is then renamed over `path`. A crash leaves either the old
/// file or the new one, never a torn one.
///
/// # Errors
/// [`DataError::Io`] when the folder is not writable or the rename fails.
pub fn atomic_write(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&dir).map_err(|e| DataError::io(&dir, e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".to_owned());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        DataError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_fields() {
        assert_eq!(
            split_quoted(r#""a;b";c;"d""e""#, ';').unwrap_or_default(),
            vec!["a;b", "c", "d\"e"]
        );
        assert_eq!(
            split_quoted("x,,y", ',').unwrap_or_default(),
            vec!["x", "", "y"]
        );
        assert_eq!(split_quoted("", ',').unwrap_or_default(), vec![""]);
        assert_eq!(split_quoted("a,", ',').unwrap_or_default(), vec!["a", ""]);
        assert!(split_quoted(r#""abc"#, ',').is_err());
        assert!(split_quoted(r#""a"b,c"#, ',').is_err());
        assert_eq!(
            split_quoted(r#"NULL;"x""#, ';').unwrap_or_default(),
            vec!["NULL", "x"]
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp("881250949"), Ok(881250949));
        assert_eq!(parse_timestamp("881250949.0"), Ok(881250949));
        assert!(parse_timestamp("88125.5").is_err());
        assert!(parse_timestamp("abc").is_err());
        assert!(parse_rating("nan").is_err());
        assert_eq!(parse_rating(" 3.5"), Ok(3.5));
    }
}
