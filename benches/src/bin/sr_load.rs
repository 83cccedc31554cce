//! Load generator for Fjord's schema registry (Confluent REST API over
//! HTTP/1.1 keep-alive, hand-rolled on tokio's `TcpStream`).
//!
//! ```text
//! sr_load --url 127.0.0.1:8081 [--subjects 1000] [--connections 8]
//!         [--lookup-seconds 10] [--warmup-seconds 1] [--broker-pid PID]
//! ```
//!
//! Phase 1 registers `--subjects` subjects (`sub-0000-value`, ...), each with
//! its own Avro record schema, one after another on one connection, and
//! times each request. Phase 2 runs lookups from `--connections` concurrent
//! connections for `--lookup-seconds` (after an unrecorded warm-up), each
//! picking subjects with a seeded xorshift and cycling through the three
//! lookups clients make: `GET /schemas/ids/{id}` (deserializers),
//! `POST /subjects/{s}` (serializers with auto.register=false) and
//! `GET /subjects/{s}/versions/latest`. Every answer must be 200; others are
//! counted. With `--broker-pid`, the broker's CPU time (utime+stime from
//! /proc) is read around each phase and work per broker CPU-second printed.
//! Run it pinned to its own core (`benches/sr_bench.sh` does).

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

type Res<T> = Result<T, Box<dyn Error + Send + Sync>>;

const KINDS: [&str; 3] = [
    "GET /schemas/ids/{id}",
    "POST /subjects/{s}",
    "GET /subjects/{s}/versions/latest",
];

struct Args {
    url: String,
    subjects: usize,
    connections: usize,
    lookup_seconds: f64,
    warmup_seconds: f64,
    broker_pid: Option<u32>,
}

fn parse_args() -> Res<Args> {
    let mut a = Args {
        url: "127.0.0.1:8081".to_string(),
        subjects: 1000,
        connections: 8,
        lookup_seconds: 10.0,
        warmup_seconds: 1.0,
        broker_pid: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = val()?.trim_start_matches("http://").to_string(),
            "--subjects" => a.subjects = val()?.parse()?,
            "--connections" => a.connections = val()?.parse()?,
            "--lookup-seconds" => a.lookup_seconds = val()?.parse()?,
            "--warmup-seconds" => a.warmup_seconds = val()?.parse()?,
            "--broker-pid" => a.broker_pid = Some(val()?.parse()?),
            "-h" | "--help" => {
                println!(
                    "sr_load --url HOST:PORT [--subjects N] [--connections N] \
                     [--lookup-seconds S] [--warmup-seconds S] [--broker-pid PID]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if a.subjects == 0 || a.connections == 0 {
        return Err("--subjects and --connections must be positive".into());
    }
    Ok(a)
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    io: BufReader<TcpStream>,
    line: String,
    body: Vec<u8>,
}

impl Conn {
    async fn open(addr: &str) -> Res<Conn> {
        let s = TcpStream::connect(addr).await?;
        s.set_nodelay(true)?;
        Ok(Conn {
            io: BufReader::with_capacity(64 * 1024, s),
            line: String::new(),
            body: Vec::new(),
        })
    }

    /// Sends one complete request and reads the answer; returns the status
    /// code, the body is left in `self.body`.
    async fn call(&mut self, request: &[u8]) -> Res<u16> {
        self.io.get_mut().write_all(request).await?;
        self.line.clear();
        if self.io.read_line(&mut self.line).await? == 0 {
            return Err("connection closed by the server".into());
        }
        let status: u16 = self
            .line
            .split_ascii_whitespace()
            .nth(1)
            .ok_or("malformed status line")?
            .parse()?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        loop {
            self.line.clear();
            if self.io.read_line(&mut self.line).await? == 0 {
                return Err("connection closed inside the headers".into());
            }
            let h = self.line.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((name, value)) = h.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.parse()?);
                } else if name.eq_ignore_ascii_case("transfer-encoding") {
                    chunked = value.eq_ignore_ascii_case("chunked");
                }
            }
        }
        self.body.clear();
        if let Some(n) = length {
            self.body.resize(n, 0);
            self.io.read_exact(&mut self.body).await?;
        } else if chunked {
            loop {
                self.line.clear();
                self.io.read_line(&mut self.line).await?;
                let size = self.line.trim_end().split(';').next().unwrap_or("");
                let n = usize::from_str_radix(size, 16)?;
                let at = self.body.len();
                self.body.resize(at + n, 0);
                self.io.read_exact(&mut self.body[at..]).await?;
                self.line.clear();
                self.io.read_line(&mut self.line).await?; // CRLF (or trailers end)
                if n == 0 {
                    break;
                }
            }
        } else {
            return Err("answer has neither Content-Length nor chunked encoding".into());
        }
        Ok(status)
    }
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

fn request(method: &str, path: &str, body: Option<&str>) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: x\r\n");
    if let Some(b) = body {
        r.push_str("Content-Type: application/vnd.schemaregistry.v1+json\r\n");
        r.push_str(&format!("Content-Length: {}\r\n\r\n{b}", b.len()));
    } else {
        r.push_str("\r\n");
    }
    r.into_bytes()
}

/// The value of the first `"id"` key of a JSON object, without a JSON parser.
fn parse_id(body: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(body).ok()?;
    let at = s.find("\"id\"")? + 4;
    let rest = s[at..].trim_start().strip_prefix(':')?.trim_start();
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct Subject {
    name: String,
    record: String,
    body: String,
}

fn subjects(n: usize) -> Vec<Subject> {
    (0..n)
        .map(|i| {
            let record = format!("R{i:04}");
            let schema = format!(
                "{{\"type\":\"record\",\"name\":\"{record}\",\"fields\":[\
                 {{\"name\":\"a\",\"type\":\"int\"}},{{\"name\":\"s\",\"type\":\"string\"}}]}}"
            );
            Subject {
                name: format!("sub-{i:04}-value"),
                record,
                body: format!("{{\"schema\":\"{}\"}}", json_escape(&schema)),
            }
        })
        .collect()
}

/// The prepared requests of one subject, one per lookup kind, and what a
/// correct answer to each must contain.
struct Lookup {
    requests: [Vec<u8>; 3],
    id: u64,
    record: Vec<u8>,
}

#[derive(Default)]
struct TaskResult {
    lat: [Vec<u32>; 3],
    non200: [u64; 3],
    wrong: [u64; 3],
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

async fn lookup_task(
    addr: String,
    lookups: Arc<Vec<Lookup>>,
    task: usize,
    warmup_end: Instant,
    end: Instant,
) -> Res<TaskResult> {
    let mut conn = Conn::open(&addr).await?;
    let mut r = TaskResult::default();
    for v in &mut r.lat {
        v.reserve(1 << 16);
    }
    let mut x: u64 =
        0x9E37_79B9_7F4A_7C15 ^ ((task as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    let mut kind = task % 3;
    loop {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let l = &lookups[(x % lookups.len() as u64) as usize];
        let t0 = Instant::now();
        let status = conn.call(&l.requests[kind]).await?;
        let t1 = Instant::now();
        if t1 >= end {
            break;
        }
        if t0 >= warmup_end {
            r.lat[kind].push(micros(t1 - t0));
            if status != 200 {
                r.non200[kind] += 1;
            } else {
                let ok = match kind {
                    0 => contains(&conn.body, &l.record),
                    _ => parse_id(&conn.body) == Some(l.id),
                };
                if !ok {
                    r.wrong[kind] += 1;
                }
            }
        }
        kind = (kind + 1) % 3;
    }
    Ok(r)
}

/// Nearest-rank percentile of sorted microseconds, in milliseconds.
fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    f64::from(sorted[rank - 1]) / 1000.0
}

fn mean_ms(v: &[u32]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64 / 1000.0
}

/// The broker's utime+stime in seconds.
fn broker_cpu(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    // Fields after the parenthesised command name; utime, stime are 14, 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_ascii_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0) // USER_HZ is 100 on Linux
}

fn row(name: &str, v: &mut [u32], seconds: f64, non200: u64, wrong: u64) {
    v.sort_unstable();
    println!(
        "| {name:<40} | {:>9} | {:>9.0} | {:>8.3} | {:>8.3} | {:>8.3} | {:>8.3} | {:>7} | {:>5} |",
        v.len(),
        v.len() as f64 / seconds,
        mean_ms(v),
        pct(v, 0.50),
        pct(v, 0.99),
        v.last().map_or(f64::NAN, |&m| f64::from(m) / 1000.0),
        non200,
        wrong,
    );
}

#[tokio::main]
async fn main() -> Res<()> {
    let args = parse_args()?;
    let subs = subjects(args.subjects);

    // Phase 1: sequential registrations on one connection.
    let mut conn = Conn::open(&args.url).await?;
    let mut reg_lat = Vec::with_capacity(subs.len());
    let mut reg_non200 = 0u64;
    let mut ids = Vec::with_capacity(subs.len());
    let cpu0 = broker_cpu(args.broker_pid);
    let t0 = Instant::now();
    for s in &subs {
        let req = request(
            "POST",
            &format!("/subjects/{}/versions", s.name),
            Some(&s.body),
        );
        let t = Instant::now();
        let status = conn.call(&req).await?;
        reg_lat.push(micros(t.elapsed()));
        if status != 200 {
            reg_non200 += 1;
            eprintln!(
                "register {}: HTTP {status}: {}",
                s.name,
                String::from_utf8_lossy(&conn.body)
            );
            ids.push(None);
        } else {
            ids.push(parse_id(&conn.body));
        }
    }
    let reg_secs = t0.elapsed().as_secs_f64();
    let reg_cpu = cpu0.zip(broker_cpu(args.broker_pid)).map(|(a, b)| b - a);
    drop(conn);

    let mut lookups = Vec::with_capacity(subs.len());
    for (s, id) in subs.iter().zip(&ids) {
        let id = id.ok_or_else(|| format!("no id registered for {}", s.name))?;
        lookups.push(Lookup {
            requests: [
                request("GET", &format!("/schemas/ids/{id}"), None),
                request("POST", &format!("/subjects/{}", s.name), Some(&s.body)),
                request(
                    "GET",
                    &format!("/subjects/{}/versions/latest", s.name),
                    None,
                ),
            ],
            id,
            record: s.record.clone().into_bytes(),
        });
    }
    let lookups = Arc::new(lookups);

    // Phase 2: concurrent lookups.
    let start = Instant::now();
    let warmup_end = start + Duration::from_secs_f64(args.warmup_seconds);
    let end = warmup_end + Duration::from_secs_f64(args.lookup_seconds);
    let mut tasks = Vec::with_capacity(args.connections);
    for task in 0..args.connections {
        tasks.push(tokio::spawn(lookup_task(
            args.url.clone(),
            Arc::clone(&lookups),
            task,
            warmup_end,
            end,
        )));
    }
    let sleep_until = tokio::time::Instant::from_std(warmup_end);
    tokio::time::sleep_until(sleep_until).await;
    let cpu1 = broker_cpu(args.broker_pid);
    tokio::time::sleep_until(tokio::time::Instant::from_std(end)).await;
    let cpu2 = broker_cpu(args.broker_pid);
    let mut total = TaskResult::default();
    for t in tasks {
        let r = t.await??;
        for k in 0..3 {
            total.lat[k].extend_from_slice(&r.lat[k]);
            total.non200[k] += r.non200[k];
            total.wrong[k] += r.wrong[k];
        }
    }
    let lookup_cpu = cpu1.zip(cpu2).map(|(a, b)| b - a);
    let secs = args.lookup_seconds;

    println!(
        "schema registry at {}: {} subjects; lookups: {} connections, {:.0} s (after {:.0} s warm-up)",
        args.url, args.subjects, args.connections, secs, args.warmup_seconds
    );
    println!(
        "| {:<40} | {:>9} | {:>9} | {:>8} | {:>8} | {:>8} | {:>8} | {:>7} | {:>5} |",
        "request", "count", "req/s", "mean ms", "p50 ms", "p99 ms", "max ms", "non-200", "wrong"
    );
    println!(
        "|{}|{}:|{}:|{}:|{}:|{}:|{}:|{}:|{}:|",
        "-".repeat(42),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(9),
        "-".repeat(8),
        "-".repeat(6)
    );
    row(
        "register POST /subjects/{s}/versions",
        &mut reg_lat,
        reg_secs,
        reg_non200,
        0,
    );
    let mut all = Vec::new();
    for (k, name) in KINDS.iter().enumerate() {
        all.extend_from_slice(&total.lat[k]);
        row(
            &format!("lookup {name}"),
            &mut total.lat[k],
            secs,
            total.non200[k],
            total.wrong[k],
        );
    }
    let non200: u64 = total.non200.iter().sum();
    let wrong: u64 = total.wrong.iter().sum();
    row("lookup, all kinds", &mut all, secs, non200, wrong);
    if let Some(c) = reg_cpu {
        println!(
            "broker CPU: registration {c:.2} s ({:.0} registrations per CPU-s)",
            subs.len() as f64 / c.max(0.01)
        );
    }
    if let Some(c) = lookup_cpu {
        println!(
            "broker CPU: lookups {c:.2} s over {secs:.0} s ({:.0}% of a core, {:.0} lookups per CPU-s)",
            100.0 * c / secs,
            all.len() as f64 / c.max(0.01)
        );
    }
    if reg_non200 + non200 + wrong > 0 {
        return Err(format!(
            "{reg_non200} registrations and {non200} lookups were not 200; {wrong} lookups answered wrongly"
        )
        .into());
    }
    Ok(())
}
