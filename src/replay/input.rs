//! The logs: files read in order, gzip-compressed ones (`.gz`)
//! decompressed, `-` for standard input; lines bounded in length.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The longest line read whole; a longer one is counted as failed and the
/// rest of it skipped, so a file without newlines cannot fill memory.
pub const MAX_LINE: usize = 1 << 20;

/// One log to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file; decompressed if its name ends in `.gz`.
    File(PathBuf),
    /// Standard input.
    Stdin,
}

impl Source {
    /// `-` is standard input, anything else a file.
    pub fn from_arg(arg: &str) -> Self {
        if arg == "-" {
            Source::Stdin
        } else {
            Source::File(PathBuf::from(arg))
        }
    }

    /// The name used in messages.
    pub fn name(&self) -> String {
        match self {
            Source::File(p) => p.display().to_string(),
            Source::Stdin => "-".into(),
        }
    }

    /// The file's size on disk, for the progress bar (`None` for stdin).
    pub fn size(&self) -> Option<u64> {
        match self {
            Source::File(p) => std::fs::metadata(p).ok().map(|m| m.len()),
            Source::Stdin => None,
        }
    }

    /// Opens it; `read` counts the bytes read off the disk (before
    /// decompression).
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(&self, read: Arc<AtomicU64>) -> io::Result<Lines> {
        let raw: Box<dyn Read> = match self {
            Source::File(p) => Box::new(File::open(p).map_err(|e| {
                io::Error::new(e.kind(), format!("cannot open {}: {e}", p.display()))
            })?),
            Source::Stdin => Box::new(io::stdin()),
        };
        let counted = Counted { inner: raw, read };
        let reader: Box<dyn BufRead> = if is_gz(self) {
            Box::new(BufReader::with_capacity(
                256 * 1024,
                flate2::read::MultiGzDecoder::new(BufReader::new(counted)),
            ))
        } else {
            Box::new(BufReader::with_capacity(256 * 1024, counted))
        };
        Ok(Lines {
            reader,
            buf: Vec::with_capacity(1024),
        })
    }
}

fn is_gz(s: &Source) -> bool {
    match s {
        Source::File(p) => p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("gz")),
        Source::Stdin => false,
    }
}

struct Counted {
    inner: Box<dyn Read>,
    read: Arc<AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A line as read.
#[derive(Debug, PartialEq, Eq)]
pub enum Line<'a> {
    /// Its text, without the newline.
    Text(&'a str),
    /// Not UTF-8.
    NotUtf8,
    /// Longer than [`MAX_LINE`] (the rest of it was skipped).
    TooLong,
}

/// The lines of one log.
pub struct Lines {
    reader: Box<dyn BufRead>,
    buf: Vec<u8>,
}

impl Lines {
    /// The next line, `None` at the end.
    ///
    /// # Errors
    /// A read error (a truncated or corrupt gzip stream, say).
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut too_long = false;
        loop {
            let chunk = self.reader.fill_buf()?;
            if chunk.is_empty() {
                if self.buf.is_empty() && !too_long {
                    return Ok(None);
                }
                break;
            }
            let (take, done) = match memchr(chunk) {
                Some(i) => (i + 1, true),
                None => (chunk.len(), false),
            };
            if !too_long {
                let room = MAX_LINE - self.buf.len();
                if take > room + 1 || (!done && take > room) {
                    too_long = true;
                    self.buf.clear();
                } else {
                    self.buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.reader.consume(take);
            if done {
                break;
            }
        }
        if too_long {
            return Ok(Some(Line::TooLong));
        }
        if self.buf.last() == Some(&b'\n') {
            self.buf.pop();
            if self.buf.last() == Some(&b'\r') {
                self.buf.pop();
            }
        }
        Ok(Some(match std::str::from_utf8(&self.buf) {
            Ok(s) => Line::Text(s),
            Err(_) => Line::NotUtf8,
        }))
    }
}

fn memchr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(bytes: &[u8]) -> Vec<String> {
        let mut l = Lines {
            reader: Box::new(io::Cursor::new(bytes.to_vec())),
            buf: Vec::new(),
        };
        let mut out = Vec::new();
        while let Some(line) = l.next_line().unwrap() {
            out.push(match line {
                Line::Text(s) => s.to_owned(),
                Line::NotUtf8 => "<not utf8>".into(),
                Line::TooLong => "<too long>".into(),
            });
        }
        out
    }

    #[test]
    fn lines_split_and_bounded() {
        assert_eq!(lines_of(b"a\nb\r\n\nc"), ["a", "b", "", "c"]);
        assert_eq!(lines_of(b""), Vec::<String>::new());
        assert_eq!(lines_of(b"x\xff\ny"), ["<not utf8>", "y"]);
        let mut big = vec![b'a'; MAX_LINE + 10];
        big.extend_from_slice(b"\nnext\n");
        big.extend(std::iter::repeat_n(b'b', MAX_LINE));
        big.extend_from_slice(b"\nlast");
        assert_eq!(
            lines_of(&big),
            ["<too long>", "next", &"b".repeat(MAX_LINE), "last"]
        );
        // A long line with no newline at the end.
        assert_eq!(lines_of(&vec![b'z'; MAX_LINE + 1]), ["<too long>"]);
    }
}
