//! Where a media playlist's event list (every segment since the start) is kept: a file that grows
//! as segments close, so that a stream's memory does not grow with its length. The playlist
//! (`playlist.rs`) decides the text; this module only stores it:
//! - [`EventList::append`] adds lines at the end (the usual case: one segment's lines);
//! - [`EventList::rewrite`] writes a new header and changed lines (a raised target duration, a
//!   marker's end, the switch to VOD) to a temporary file renamed into place, so that a reader or
//!   a crash never sees half of it;
//! - [`EventList::read`] gives the text back, for serving.
//!
//! A playlist made without a file keeps the text in memory (tests, and lists read back to be
//! looked at rather than continued).
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// The text of an event list: a header, then the body (segments, markers, `EXT-X-ENDLIST`).
#[derive(Debug, Clone)]
pub struct EventList {
    store: Store,
    /// The header as written ("" before the first write).
    header: String,
    /// Bytes of the body written (after the header).
    body: u64,
}

#[derive(Debug, Clone)]
enum Store {
    Memory(Vec<u8>),
    File(PathBuf),
}

impl EventList {
    /// An event list kept at `path` (written on the first [`EventList::rewrite`]).
    pub fn file(path: PathBuf) -> Self {
        EventList {
            store: Store::File(path),
            header: String::new(),
            body: 0,
        }
    }

    /// An event list kept in memory.
    pub fn memory() -> Self {
        EventList {
            store: Store::Memory(Vec::new()),
            header: String::new(),
            body: 0,
        }
    }

    /// An event list already written: `header` then `body` bytes, at `path` or (without one) in
    /// memory. Anything after them in the file (a torn last line) goes with the next rewrite.
    pub fn existing(path: Option<PathBuf>, header: &str, body: &str) -> Self {
        let store = match path {
            Some(path) => Store::File(path),
            None => Store::Memory(format!("{header}{body}").into_bytes()),
        };
        EventList {
            store,
            header: header.to_string(),
            body: body.len() as u64,
        }
    }

    pub fn path(&self) -> Option<&Path> {
        match &self.store {
            Store::File(path) => Some(path),
            Store::Memory(_) => None,
        }
    }

    /// The header as written.
    pub fn header(&self) -> &str {
        &self.header
    }

    /// Bytes of the body written.
    pub fn body_len(&self) -> u64 {
        self.body
    }

    /// Adds `text` at the end of the body.
    pub fn append(&mut self, text: &[u8]) -> io::Result<()> {
        if text.is_empty() {
            return Ok(());
        }
        let end = self.header.len() as u64 + self.body;
        match &mut self.store {
            Store::Memory(bytes) => {
                bytes.truncate(end as usize);
                bytes.extend_from_slice(text);
            }
            Store::File(path) => {
                let mut file = OpenOptions::new().write(true).open(&*path)?;
                // What a failed append may have left, and a torn line of a crash, go first.
                file.set_len(end)?;
                file.seek(SeekFrom::End(0))?;
                if let Err(e) = file.write_all(text) {
                    let _ = file.set_len(end);
                    return Err(e);
                }
            }
        }
        self.body += text.len() as u64;
        Ok(())
    }

    /// Writes `header`, then the body up to `keep` with each `(range, text)` of `patches`
    /// (sorted, not overlapping, inside `0..keep`) put in place of those bytes, then `tail`.
    pub fn rewrite(
        &mut self,
        header: &str,
        keep: u64,
        patches: &[(Range<u64>, String)],
        tail: &[u8],
    ) -> io::Result<()> {
        let keep = keep.min(self.body);
        let old_header = self.header.len() as u64;
        let mut body = 0u64;
        let new = match &mut self.store {
            Store::Memory(bytes) => {
                let mut out = header.as_bytes().to_vec();
                let mut at = 0u64;
                let slice = |r: Range<u64>| {
                    &bytes[(old_header + r.start) as usize..(old_header + r.end) as usize]
                };
                for (range, text) in patches {
                    out.extend_from_slice(slice(at..range.start));
                    out.extend_from_slice(text.as_bytes());
                    at = range.end;
                }
                out.extend_from_slice(slice(at..keep));
                out.extend_from_slice(tail);
                body = (out.len() - header.len()) as u64;
                Some(out)
            }
            Store::File(path) => {
                body += rewrite_file(path, old_header, header, keep, patches, tail)?;
                None
            }
        };
        if let Some(new) = new {
            self.store = Store::Memory(new);
        }
        self.header = header.to_string();
        self.body = body;
        Ok(())
    }

    /// The whole text as written.
    pub fn read(&self) -> io::Result<Vec<u8>> {
        let len = self.header.len() as u64 + self.body;
        match &self.store {
            Store::Memory(bytes) => Ok(bytes[..len as usize].to_vec()),
            Store::File(path) => {
                let mut out = Vec::with_capacity(len as usize);
                File::open(path)?.take(len).read_to_end(&mut out)?;
                Ok(out)
            }
        }
    }
}

/// See [`EventList::rewrite`]; returns the new body's length.
fn rewrite_file(
    path: &Path,
    old_header: u64,
    header: &str,
    keep: u64,
    patches: &[(Range<u64>, String)],
    tail: &[u8],
) -> io::Result<u64> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let written = (|| {
        let mut out = io::BufWriter::new(File::create(&tmp)?);
        out.write_all(header.as_bytes())?;
        let mut body = 0u64;
        if keep > 0 {
            let mut old = File::open(path)?;
            let mut at = 0u64;
            let mut copy = |from: u64, to: u64, out: &mut io::BufWriter<File>| {
                old.seek(SeekFrom::Start(old_header + from))?;
                let copied = io::copy(&mut (&mut old).take(to - from), out)?;
                if copied != to - from {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{} is shorter than written", path.display()),
                    ));
                }
                Ok::<_, io::Error>(copied)
            };
            for (range, text) in patches {
                body += copy(at, range.start, &mut out)?;
                out.write_all(text.as_bytes())?;
                body += text.len() as u64;
                at = range.end;
            }
            body += copy(at, keep, &mut out)?;
        }
        out.write_all(tail)?;
        body += tail.len() as u64;
        out.into_inner().map_err(|e| e.into_error())?;
        Ok::<_, io::Error>(body)
    })();
    match written {
        Ok(body) => {
            std::fs::rename(&tmp, path)?;
            Ok(body)
        }
        Err(e) => {
            // Half a file (a full disk) must not keep taking space.
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn both() -> (EventList, EventList, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (
            EventList::memory(),
            EventList::file(dir.path().join("sub").join("event.m3u8")),
            dir,
        )
    }

    #[test]
    fn appends_patches_and_rewrites_alike_in_memory_and_on_disk() {
        let (memory, file, _dir) = both();
        for mut list in [memory, file] {
            list.rewrite("H1\n", 0, &[], b"a\nOPEN\nb\n").unwrap();
            list.append(b"c\n").unwrap();
            assert_eq!(list.read().unwrap(), b"H1\na\nOPEN\nb\nc\n");
            list.rewrite(
                "HEADER2\n",
                list.body_len(),
                &[(2..7, "CLOSED\n".into())],
                b"END\n",
            )
            .unwrap();
            assert_eq!(list.read().unwrap(), b"HEADER2\na\nCLOSED\nb\nc\nEND\n");
            assert_eq!(list.body_len(), "a\nCLOSED\nb\nc\nEND\n".len() as u64);
            // Dropping the last line (a reopened list loses its EXT-X-ENDLIST).
            list.rewrite("H3\n", list.body_len() - 4, &[], b"").unwrap();
            list.append(b"d\n").unwrap();
            assert_eq!(list.read().unwrap(), b"H3\na\nCLOSED\nb\nc\nd\n");
            if let Some(path) = list.path() {
                assert_eq!(std::fs::read(path).unwrap(), b"H3\na\nCLOSED\nb\nc\nd\n");
            }
        }
    }

    #[test]
    fn a_torn_tail_on_disk_is_cut_before_the_next_append() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("event.m3u8");
        std::fs::write(&path, "H\na\nhalf a li").unwrap();
        let mut list = EventList::existing(Some(path.clone()), "H\n", "a\n");
        list.append(b"b\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "H\na\nb\n");
    }
}
