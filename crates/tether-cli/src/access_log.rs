//! `--access-log PATH|-`: one line per request in the combined log format, as nginx's
//! `combined` writes it:
//!
//! ```text
//! $remote_addr - - [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"
//! ```
//!
//! The time is UTC (`10/Oct/2000:13:55:36 +0000`). In the request line, the referer and the
//! user agent every `"`, `\`, control byte and byte above 0x7e is written as `\xHH`, as
//! nginx's `escape=default` does: a CR or LF sent by a client can never start a line of its
//! own in the log.
//!
//! A worker formats its line and hands it to a bounded queue without waiting
//! ([`AccessLog::record`]); a thread of its own ([`Writer`]) writes the queue out through a
//! buffer, flushed whenever the queue runs empty and at least every second. When the queue
//! is full (the disk or the pipe does not keep up) the line is dropped and counted, and the
//! writer says so on stderr: the server never slows down for its log.

use std::fs::OpenOptions;
use std::io::{self, BufWriter, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Lines that may wait for the writer: about 13 MiB at 200 bytes a line. Beyond that a line
/// is dropped (and counted) rather than making a worker wait.
pub const QUEUE_LINES: usize = 64 * 1024;

/// The longest the writer keeps written lines in its buffer while lines keep coming.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// The writer's buffer.
const BUFFER_BYTES: usize = 64 * 1024;

/// One request, as it goes into the log.
#[derive(Clone, Copy, Debug)]
pub struct Entry<'a> {
    /// The client (only the address is written).
    pub peer: SocketAddr,
    pub method: &'a str,
    /// The request target as received (`/a?b`).
    pub target: &'a str,
    /// `HTTP/1.1` or `HTTP/1.0` (see [`version_str`]).
    pub version: &'a str,
    pub status: u16,
    /// Body bytes sent, not counting the head (see [`body_bytes_sent`]).
    pub body_bytes: u64,
    /// The `Referer` field, if the request had one.
    pub referer: Option<&'a [u8]>,
    /// The `User-Agent` field, if the request had one.
    pub user_agent: Option<&'a [u8]>,
}

/// The version as the request line spells it.
pub fn version_str(version: tether::Version) -> &'static str {
    match version {
        tether::Version::Http10 => "HTTP/1.0",
        tether::Version::Http11 => "HTTP/1.1",
    }
}

/// `$body_bytes_sent` from what the response announced: nothing for `HEAD` and for statuses
/// without a body (1xx, 204, 304), else the body's length (0 when it was not known before
/// sending).
pub fn body_bytes_sent(is_head: bool, status: tether::Status, body_len: Option<u64>) -> u64 {
    if is_head || !status.allows_body() {
        0
    } else {
        body_len.unwrap_or(0)
    }
}

/// The sending side of the access log: cheap to clone, one per worker if need be.
#[derive(Clone)]
pub struct AccessLog {
    tx: SyncSender<Vec<u8>>,
    dropped: Arc<AtomicU64>,
}

/// The thread that writes the log. [`Writer::finish`] (or dropping it) waits until every
/// [`AccessLog`] clone is gone and every line they queued is written and flushed.
pub struct Writer {
    thread: Option<JoinHandle<Ended>>,
    dropped: Arc<AtomicU64>,
}

/// How the writer thread ended.
struct Ended {
    result: io::Result<()>,
    /// Dropped lines it already reported.
    reported: u64,
}

impl AccessLog {
    /// Opens the log: `-` is standard output, anything else a file opened for appending
    /// (created if missing).
    ///
    /// # Errors
    /// The file cannot be opened, or the thread cannot be started.
    pub fn open(target: &str) -> io::Result<(AccessLog, Writer)> {
        let out: Box<dyn Write + Send> = if target == "-" {
            Box::new(io::stdout())
        } else {
            Box::new(OpenOptions::new().create(true).append(true).open(target)?)
        };
        AccessLog::with_sink(out, QUEUE_LINES)
    }

    /// A log writing to `out`, with at most `bound` lines waiting.
    fn with_sink(out: Box<dyn Write + Send>, bound: usize) -> io::Result<(AccessLog, Writer)> {
        let (tx, rx) = mpsc::sync_channel(bound.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&dropped);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_lines(&rx, out, &counter))?;
        let writer = Writer {
            thread: Some(thread),
            dropped: Arc::clone(&dropped),
        };
        Ok((AccessLog { tx, dropped }, writer))
    }

    /// Queues the line of one request; never waits. A line that finds the queue full (or
    /// the writer stopped by a write error) is dropped and counted.
    pub fn record(&self, entry: &Entry<'_>) {
        let mut line = Vec::with_capacity(160);
        format_line(&mut line, entry, unix_seconds());
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped so far because the log could not keep up.
    #[cfg(test)]
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Writer {
    /// Waits until every [`AccessLog`] clone is dropped and their lines are written and
    /// flushed.
    ///
    /// # Errors
    /// The first write error; the lines after it were counted as dropped and reported.
    pub fn finish(mut self) -> io::Result<()> {
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let ended = thread.join().unwrap_or_else(|_| Ended {
            result: Err(io::Error::other("the access log writer panicked")),
            reported: 0,
        });
        // Lines refused after the writer stopped were never seen by it.
        let late = self.dropped.load(Ordering::Relaxed) - ended.reported;
        if late > 0 {
            eprintln!("{}", dropped_notice(late));
        }
        ended.result
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Err(e) = self.join() {
            eprintln!("tether: access log: {e}");
        }
    }
}

/// The writer thread: writes what arrives, flushes when the queue runs empty (or a second
/// passed), and ends once every sender is gone and the queue is drained.
fn write_lines(rx: &Receiver<Vec<u8>>, out: Box<dyn Write + Send>, dropped: &AtomicU64) -> Ended {
    let mut out = BufWriter::with_capacity(BUFFER_BYTES, out);
    let mut reported = 0;
    let report = |reported: &mut u64| {
        let now = dropped.load(Ordering::Relaxed);
        if now > *reported {
            eprintln!("{}", dropped_notice(now - *reported));
            *reported = now;
        }
    };
    let mut run = || -> io::Result<()> {
        // `recv` fails only once every sender is dropped and the queue is empty.
        while let Ok(line) = rx.recv() {
            out.write_all(&line)?;
            let mut last_flush = Instant::now();
            let mut n = 0u32;
            while let Ok(line) = rx.try_recv() {
                out.write_all(&line)?;
                n = n.wrapping_add(1);
                if n % 256 == 0 && last_flush.elapsed() >= FLUSH_EVERY {
                    out.flush()?;
                    report(&mut reported);
                    last_flush = Instant::now();
                }
            }
            out.flush()?;
            report(&mut reported);
        }
        out.flush()
    };
    let result = run();
    if let Err(e) = &result {
        eprintln!("tether: access log: {e}; later lines are dropped");
    }
    // Dropping the receiver now makes later lines count as dropped at once.
    report(&mut reported);
    Ended { result, reported }
}

/// What the writer says about lines it never got.
fn dropped_notice(n: u64) -> String {
    format!("tether: {n} access log lines dropped (the log could not keep up)")
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Appends the line of `entry` at `secs` since the epoch, newline included.
fn format_line(out: &mut Vec<u8>, entry: &Entry<'_>, secs: u64) {
    // A client on an IPv4-mapped address of a dual-stack socket is written as IPv4.
    let ip = entry.peer.ip().to_canonical();
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{ip} - - [");
    format_time(out, secs);
    out.extend_from_slice(b"] \"");
    escape(out, entry.method.as_bytes());
    out.push(b' ');
    escape(out, entry.target.as_bytes());
    out.push(b' ');
    escape(out, entry.version.as_bytes());
    let _ = write!(out, "\" {} {} ", entry.status, entry.body_bytes);
    quoted(out, entry.referer);
    out.push(b' ');
    quoted(out, entry.user_agent);
    out.push(b'\n');
}

/// `"value"` escaped, or `"-"` without a value (as nginx writes a missing field).
fn quoted(out: &mut Vec<u8>, value: Option<&[u8]>) {
    out.push(b'"');
    match value {
        None => out.push(b'-'),
        Some(v) => escape(out, v),
    }
    out.push(b'"');
}

/// Appends `bytes` with `"`, `\`, control bytes and bytes above 0x7e as `\xHH`.
fn escape(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in bytes {
        if b == b'"' || b == b'\\' || !(0x20..0x7f).contains(&b) {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        } else {
            out.push(b);
        }
    }
}

/// Appends `secs` since the epoch as `10/Oct/2000:13:55:36 +0000` (UTC).
fn format_time(out: &mut Vec<u8>, secs: u64) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{day:02}/{}/{year}:{:02}:{:02}:{:02} +0000",
        MONTHS[usize::from(month - 1)],
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
}

/// The date (year, month 1-12, day 1-31) `days` after 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    // Counted from 0000-03-01, so that the leap day ends the (400-year) era.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    fn entry() -> Entry<'static> {
        Entry {
            peer: "192.0.2.7:51234".parse().unwrap(),
            method: "GET",
            target: "/a?b=1",
            version: "HTTP/1.1",
            status: 200,
            body_bytes: 13,
            referer: None,
            user_agent: Some(b"curl/8.5.0"),
        }
    }

    fn line(e: &Entry<'_>) -> String {
        let mut out = Vec::new();
        format_line(&mut out, e, 971_186_136);
        String::from_utf8(out).unwrap()
    }

    fn time(secs: u64) -> String {
        let mut out = Vec::new();
        format_time(&mut out, secs);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_are_utc_in_the_common_log_format() {
        assert_eq!(time(971_186_136), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(time(0), "01/Jan/1970:00:00:00 +0000");
        assert_eq!(time(951_782_400), "29/Feb/2000:00:00:00 +0000");
        assert_eq!(time(1_709_251_199), "29/Feb/2024:23:59:59 +0000");
        assert_eq!(time(4_102_444_800), "01/Jan/2100:00:00:00 +0000");
        assert_eq!(time(4_107_456_000), "28/Feb/2100:00:00:00 +0000");
        assert_eq!(time(4_107_542_400), "01/Mar/2100:00:00:00 +0000");
    }

    #[test]
    fn civil_dates_match_a_day_by_day_count() {
        let mut date = (1970u64, 1u8, 1u8);
        for days in 0..200_000 {
            assert_eq!(civil_from_days(days), date, "day {days}");
            let (y, m, d) = date;
            let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            date = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
        }
    }

    #[test]
    fn a_whole_line_is_nginx_combined() {
        assert_eq!(
            line(&entry()),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 +0000] \"GET /a?b=1 HTTP/1.1\" 200 13 \"-\" \
             \"curl/8.5.0\"\n"
        );
        let e = Entry {
            peer: "[2001:db8::1]:443".parse().unwrap(),
            method: "HEAD",
            status: 304,
            body_bytes: 0,
            referer: Some(b"https://example.com/"),
            user_agent: None,
            ..entry()
        };
        assert_eq!(
            line(&e),
            "2001:db8::1 - - [10/Oct/2000:13:55:36 +0000] \"HEAD /a?b=1 HTTP/1.1\" 304 0 \
             \"https://example.com/\" \"-\"\n"
        );
        let mapped = Entry {
            peer: "[::ffff:192.0.2.9]:80".parse().unwrap(),
            ..entry()
        };
        assert!(line(&mapped).starts_with("192.0.2.9 - - ["));
    }

    #[test]
    fn control_bytes_cannot_forge_a_line() {
        let fake = b"x\r\n127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \"GET /admin HTTP/1.1\" 200 0 \"-\" \"y";
        let e = Entry {
            user_agent: Some(fake),
            referer: Some(b"a\tb\x1b[31m\x7f"),
            ..entry()
        };
        let l = line(&e);
        assert_eq!(l.matches('\n').count(), 1);
        assert!(l.ends_with('\n'));
        assert!(!l.contains('\r'));
        assert!(l.contains(
            "\"a\\x09b\\x1B[31m\\x7F\" \"x\\x0D\\x0A127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] \
             \\x22GET /admin HTTP/1.1\\x22 200 0 \\x22-\\x22 \\x22y\"\n"
        ));
    }

    #[test]
    fn quotes_backslashes_and_non_ascii_are_escaped() {
        let e = Entry {
            target: "/a\"b\\c/é",
            user_agent: Some(b"bad \xff\xfe utf-8"),
            ..entry()
        };
        let l = line(&e);
        assert!(
            l.contains("\"GET /a\\x22b\\x5Cc/\\xC3\\xA9 HTTP/1.1\""),
            "{l}"
        );
        assert!(l.ends_with("\"bad \\xFF\\xFE utf-8\"\n"), "{l}");
        // Every quote left is one of the six the format has.
        assert_eq!(l.matches('"').count(), 6);
    }

    #[test]
    fn body_bytes_follow_the_method_and_status() {
        use tether::Status;
        assert_eq!(body_bytes_sent(false, Status::OK, Some(13)), 13);
        assert_eq!(body_bytes_sent(true, Status::OK, Some(13)), 0);
        assert_eq!(body_bytes_sent(false, Status(304), Some(13)), 0);
        assert_eq!(body_bytes_sent(false, Status(204), Some(13)), 0);
        assert_eq!(body_bytes_sent(false, Status::OK, None), 0);
        assert_eq!(version_str(tether::Version::Http10), "HTTP/1.0");
    }

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("tether-access-{name}-{}", std::process::id()))
    }

    #[test]
    fn every_accepted_line_is_written_by_finish() {
        let path = temp_path("all");
        let _ = std::fs::remove_file(&path);
        std::fs::write(&path, b"earlier\n").unwrap();
        let (log, writer) = AccessLog::open(path.to_str().unwrap()).unwrap();
        let threads: Vec<_> = (0..2)
            .map(|t| {
                let log = log.clone();
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        let target = format!("/{t}/{i}");
                        log.record(&Entry {
                            target: &target,
                            ..entry()
                        });
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(log.dropped(), 0);
        drop(log);
        writer.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 10_001);
        assert_eq!(lines[0], "earlier", "the file is appended to");
        for t in 0..2 {
            let mine: Vec<&str> = lines
                .iter()
                .filter(|l| l.contains(&format!("\"GET /{t}/")))
                .copied()
                .collect();
            assert_eq!(mine.len(), 5_000);
            for (i, l) in mine.iter().enumerate() {
                assert!(l.contains(&format!("\"GET /{t}/{i} HTTP/1.1\"")), "{l}");
            }
        }
    }

    /// A sink that holds its first flush until the test lets it go.
    struct Gate {
        entered: Option<mpsc::Sender<()>>,
        go: Option<mpsc::Receiver<()>>,
        out: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gate {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.out.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            if let (Some(entered), Some(go)) = (self.entered.take(), self.go.take()) {
                entered.send(()).unwrap();
                go.recv().unwrap();
            }
            Ok(())
        }
    }

    #[test]
    fn a_full_queue_drops_and_counts() {
        let (entered_tx, entered) = mpsc::channel();
        let (go, go_rx) = mpsc::channel();
        let out = Arc::new(Mutex::new(Vec::new()));
        let gate = Gate {
            entered: Some(entered_tx),
            go: Some(go_rx),
            out: Arc::clone(&out),
        };
        let (log, writer) = AccessLog::with_sink(Box::new(gate), 2).unwrap();
        // The first line reaches the writer, which then waits in its flush.
        log.record(&entry());
        entered.recv().unwrap();
        let start = Instant::now();
        for _ in 0..10 {
            log.record(&entry());
        }
        assert!(start.elapsed() < Duration::from_secs(1), "record waited");
        assert_eq!(log.dropped(), 8);
        go.send(()).unwrap();
        drop(log);
        writer.finish().unwrap();
        let text = String::from_utf8(out.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 3);
        assert_eq!(
            dropped_notice(8),
            "tether: 8 access log lines dropped (the log could not keep up)"
        );
    }

    /// A sink that always fails.
    struct Broken;

    impl Write for Broken {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::StorageFull.into())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_write_error_ends_the_writer_and_later_lines_count_as_dropped() {
        let (log, writer) = AccessLog::with_sink(Box::new(Broken), 4).unwrap();
        log.record(&entry());
        // The writer stops at its first flush; wait until it has let go of the queue.
        let start = Instant::now();
        while !matches!(
            log.tx.try_send(Vec::new()),
            Err(TrySendError::Disconnected(_))
        ) {
            assert!(start.elapsed() < Duration::from_secs(10), "still writing");
            std::thread::sleep(Duration::from_millis(1));
        }
        log.record(&entry());
        assert!(log.dropped() >= 1);
        drop(log);
        assert_eq!(
            writer.finish().unwrap_err().kind(),
            io::ErrorKind::StorageFull
        );
    }
}
