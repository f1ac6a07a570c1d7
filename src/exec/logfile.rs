//! Per-task log files in the CRI logging format: one record per line,
//! `<RFC 3339 timestamp> <stdout|stderr> <F|P> <bytes>`, where `F` ends a line and `P` is a
//! fragment of a longer one (or the unfinished last one). A known, greppable text format that
//! keeps arbitrary bytes (only the newline is special, and it is never inside a record).
//!
//! Written by the process executor's supervisor, read by `logs` (tail, since, follow).

use std::collections::VecDeque;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::DateTime;
use futures::StreamExt;
use shoal_store::model::Timestamp;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::{ExecError, LogLine, LogLines, LogOptions, LogStream};

/// How often a follower looks for new records: the supervisor pumps at the same pace.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Appends one record per line of `data` to `out`; `complete` says whether `data` ends a line.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    ts: Timestamp,
    stream: LogStream,
    data: &[u8],
    complete: bool,
) {
    let _ = write!(
        out,
        "{ts} {} {} ",
        stream.as_str(),
        if complete { 'F' } else { 'P' }
    );
    out.extend_from_slice(data);
    out.push(b'\n');
}

/// Parses one record (without its trailing newline) into a log line. The newline that `F`
/// stands for is put back, so `line` is the bytes exactly as written.
pub(crate) fn decode(record: &[u8]) -> Option<LogLine> {
    let mut parts = record.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let timestamp = Timestamp(DateTime::parse_from_rfc3339(ts).ok()?.to_utc());
    let stream = match parts.next()? {
        b"stdout" => LogStream::Stdout,
        b"stderr" => LogStream::Stderr,
        _ => return None,
    };
    let complete = match parts.next()? {
        b"F" => true,
        b"P" => false,
        _ => return None,
    };
    let data = parts.next().unwrap_or_default();
    let mut line = BytesMut::with_capacity(data.len() + 1);
    line.extend_from_slice(data);
    if complete {
        line.extend_from_slice(b"\n");
    }
    Some(LogLine {
        stream,
        timestamp,
        line: line.freeze(),
    })
}

/// Appends already-encoded records to the log file in one write, so readers never see a record
/// interleaved with another.
pub(crate) fn append(path: &Path, records: &[u8]) -> io::Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(records)
}

fn wanted(line: &LogLine, options: &LogOptions) -> bool {
    let stream_ok = match line.stream {
        LogStream::Stdout => options.stdout,
        LogStream::Stderr => options.stderr,
    };
    stream_ok && options.since.is_none_or(|since| line.timestamp >= since)
}

/// Streams the records of the log file at `path` as `options` ask. With `follow`, keeps polling
/// for new records until `finished(dir)` is true and everything written before that was read.
/// Memory stays bounded: records stream from the file, and only a tail is held back (its `n`
/// lines).
pub(crate) fn read(path: PathBuf, options: LogOptions, finished: fn(&Path) -> bool) -> LogLines {
    futures::stream::once(open(path, options, finished))
        .flatten()
        .boxed()
}

async fn open(path: PathBuf, options: LogOptions, finished: fn(&Path) -> bool) -> LogLines {
    let mut reader = Reader {
        path,
        file: None,
        partial: Vec::new(),
        options,
        finished,
        done: false,
    };
    let Some(n) = reader.options.tail else {
        return futures::stream::unfold(reader, Reader::next).boxed();
    };
    // The tail: scan what exists now, keep the last `n` wanted records, go on from there.
    let follow = std::mem::replace(&mut reader.options.follow, false);
    let mut tail = VecDeque::new();
    loop {
        match reader.record().await {
            Some(Ok(line)) => {
                tail.push_back(Ok(line));
                if tail.len() as u64 > n {
                    tail.pop_front();
                }
            }
            Some(Err(e)) => {
                tail.push_back(Err(e));
                break;
            }
            None => break,
        }
    }
    reader.options.follow = follow;
    let rest = if follow && !reader.done {
        futures::stream::unfold(reader, Reader::next).boxed()
    } else {
        futures::stream::empty().boxed()
    };
    futures::stream::iter(tail).chain(rest).boxed()
}

/// Reads records in order; at the end of the file, either stops or (following) waits for more.
struct Reader {
    path: PathBuf,
    file: Option<BufReader<tokio::fs::File>>,
    /// The start of a record whose newline has not been written yet.
    partial: Vec<u8>,
    options: LogOptions,
    finished: fn(&Path) -> bool,
    done: bool,
}

impl Reader {
    async fn next(mut self) -> Option<(Result<LogLine, ExecError>, Reader)> {
        let item = self.record().await?;
        Some((item, self))
    }

    /// The next wanted record; `None` at the end (of the file, or with `follow` of the log).
    async fn record(&mut self) -> Option<Result<LogLine, ExecError>> {
        loop {
            if self.done {
                return None;
            }
            // Whether the writer was done before this read: then the end of the file is the end.
            let finished = !self.options.follow || self.is_finished();
            if self.file.is_none() {
                match tokio::fs::File::open(&self.path).await {
                    Ok(f) => self.file = Some(BufReader::new(f)),
                    Err(e) if e.kind() != io::ErrorKind::NotFound => {
                        self.done = true;
                        return Some(Err(ExecError::Temporary(format!("reading task log: {e}"))));
                    }
                    Err(_) if finished => return None,
                    Err(_) => {
                        tokio::time::sleep(POLL).await;
                        continue;
                    }
                }
            }
            let file = self.file.as_mut().expect("opened above");
            let mut chunk = Vec::new();
            let n = match file.read_until(b'\n', &mut chunk).await {
                Ok(n) => n,
                Err(e) => {
                    self.done = true;
                    return Some(Err(ExecError::Temporary(format!("reading task log: {e}"))));
                }
            };
            self.partial.extend_from_slice(&chunk);
            if n > 0 && self.partial.last() == Some(&b'\n') {
                let record = std::mem::take(&mut self.partial);
                if let Some(line) = decode(&record[..record.len() - 1]) {
                    if wanted(&line, &self.options) {
                        return Some(Ok(line));
                    }
                }
                continue;
            }
            if finished {
                return None;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    fn is_finished(&self) -> bool {
        let dir = self.path.parent().unwrap_or(Path::new("/"));
        (self.finished)(dir)
    }
}

/// Reads at most `limit` bytes of `path` from `offset`; empty at EOF or when the file is missing.
pub(crate) fn read_from(path: &Path, offset: u64, limit: usize) -> io::Result<Bytes> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Bytes::new()),
        Err(e) => return Err(e),
    };
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(limit.min(64 * 1024));
    f.take(limit as u64).read_to_end(&mut buf)?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;

    #[test]
    fn records_round_trip_with_arbitrary_bytes() {
        let ts = Timestamp::from_unix_nanos(1_764_048_834_648_088_463);
        let mut out = Vec::new();
        encode(&mut out, ts, LogStream::Stderr, b"a b\tc \xff", true);
        encode(&mut out, ts, LogStream::Stdout, b"part", false);
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("2025-11-25T05:33:54.648088463Z stderr F a b\tc "));
        let mut recs = out.split(|b| *b == b'\n');
        let one = decode(recs.next().unwrap()).unwrap();
        assert_eq!(one.stream, LogStream::Stderr);
        assert_eq!(one.timestamp, ts);
        assert_eq!(&one.line[..], b"a b\tc \xff\n");
        let two = decode(recs.next().unwrap()).unwrap();
        assert_eq!(&two.line[..], b"part");
        assert!(decode(b"garbage").is_none());
    }

    #[tokio::test]
    async fn reads_tail_since_and_streams() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut out = Vec::new();
        for i in 0..5 {
            let stream = if i % 2 == 0 {
                LogStream::Stdout
            } else {
                LogStream::Stderr
            };
            encode(
                &mut out,
                Timestamp::from_unix_nanos(i * 1_000_000_000),
                stream,
                format!("l{i}").as_bytes(),
                true,
            );
        }
        append(&path, &out).unwrap();
        let never = |_: &Path| false;
        let all: Vec<LogLine> = read(path.clone(), LogOptions::default(), never)
            .try_collect()
            .await
            .unwrap();
        assert_eq!(all.len(), 5);
        let tail: Vec<LogLine> = read(
            path.clone(),
            LogOptions {
                tail: Some(2),
                ..Default::default()
            },
            never,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(
            tail.iter().map(|l| &l.line[..]).collect::<Vec<_>>(),
            [&b"l3\n"[..], b"l4\n"]
        );
        let stderr_since: Vec<LogLine> = read(
            path.clone(),
            LogOptions {
                stdout: false,
                since: Some(Timestamp::from_unix_nanos(2_000_000_000)),
                ..Default::default()
            },
            never,
        )
        .try_collect()
        .await
        .unwrap();
        assert_eq!(stderr_since.len(), 1);
        assert_eq!(&stderr_since[0].line[..], b"l3\n");
    }

    #[tokio::test]
    async fn follow_streams_new_records_until_finished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let finished = |d: &Path| d.join("exit").exists();
        let mut lines = read(
            path.clone(),
            LogOptions {
                follow: true,
                ..Default::default()
            },
            finished,
        );
        let mut out = Vec::new();
        encode(
            &mut out,
            Timestamp::now(),
            LogStream::Stdout,
            b"first",
            true,
        );
        append(&path, &out).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(&got.line[..], b"first\n");
        // A record written in two pieces comes out whole.
        let mut out = Vec::new();
        encode(
            &mut out,
            Timestamp::now(),
            LogStream::Stderr,
            b"second",
            true,
        );
        append(&path, &out[..5]).unwrap();
        append(&path, &out[5..]).unwrap();
        std::fs::write(dir.path().join("exit"), "0").unwrap();
        let rest: Vec<LogLine> = tokio::time::timeout(Duration::from_secs(10), lines.try_collect())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(&rest[0].line[..], b"second\n");
        assert_eq!(rest[0].stream, LogStream::Stderr);
    }

    #[tokio::test]
    async fn tail_then_follow() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut out = Vec::new();
        for text in [&b"old"[..], b"recent"] {
            encode(&mut out, Timestamp::now(), LogStream::Stdout, text, true);
        }
        append(&path, &out).unwrap();
        let finished = |d: &Path| d.join("exit").exists();
        let options = LogOptions {
            follow: true,
            tail: Some(1),
            ..Default::default()
        };
        let mut lines = read(path.clone(), options, finished);
        let next = |l: Option<Result<LogLine, ExecError>>| l.unwrap().unwrap().line;
        let first = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .unwrap();
        assert_eq!(&next(first)[..], b"recent\n");
        let mut out = Vec::new();
        encode(&mut out, Timestamp::now(), LogStream::Stdout, b"new", true);
        append(&path, &out).unwrap();
        let second = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .unwrap();
        assert_eq!(&next(second)[..], b"new\n");
        std::fs::write(dir.path().join("exit"), "0").unwrap();
        let end = tokio::time::timeout(Duration::from_secs(10), lines.next())
            .await
            .unwrap();
        assert!(end.is_none());
    }
}
