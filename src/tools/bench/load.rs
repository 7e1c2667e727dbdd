//! The load generator: N keep-alive HTTP/1.1 connections (plain or TLS), each a loop of
//! sequential requests.
//!
//! It is written to be cheap, because it shares the machine's cores with the server it
//! measures: every request is pre-rendered bytes written with one `write_all`, and a response is
//! read into a per-connection buffer, its head parsed with `httparse` (no header map, no
//! allocation) and its body skipped by `Content-Length` or chunk sizes. Latency is the time from
//! just before the write to the last byte of the body, recorded into the connection's own
//! [`Histogram`]; histograms are merged when the run is over.
//!
//! A run has three phases: every connection connects and sends a few warm-up requests (not
//! measured), then all wait at a barrier until the harness has read the server's counters and
//! set the deadline, then they loop until the deadline. A response with another status than
//! expected, a broken connection or a malformed response counts as an error; the connection is
//! then re-opened.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{watch, Barrier};

use super::histogram::Histogram;

/// Requests each connection sends before measuring (connection set-up, first cache misses).
const WARMUP_REQUESTS: usize = 8;
/// Most response headers the parser accepts.
const MAX_HEADERS: usize = 32;
/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What to send, where, how hard and for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// The server.
    pub addr: SocketAddr,
    /// Complete requests (head, and body if any), sent in rotation; connection `i` starts at
    /// request `i % len` so that a mix is spread evenly.
    pub requests: Arc<[Vec<u8>]>,
    /// The status every response should carry.
    pub expected_status: u16,
    /// Concurrent connections.
    pub connections: usize,
    /// How long the measured phase lasts.
    pub duration: Duration,
    /// Speak TLS, trusting this configuration's roots (the server is verified as `localhost`).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Responses received in the measured phase (expected or not).
    pub requests: u64,
    /// Unexpected statuses, broken connections and malformed responses (warm-up included).
    pub errors: u64,
    /// The first error, for the operator.
    pub first_error: Option<String>,
    /// Latency of every measured response, nanoseconds.
    pub latency: Histogram,
    /// From the start signal to the last connection's end.
    pub elapsed: Duration,
}

/// What one connection counted.
#[derive(Default)]
struct ConnectionReport {
    /// Measured responses.
    requests: u64,
    /// Errors, warm-up included.
    errors: u64,
    /// The first error.
    first_error: Option<String>,
    /// Latencies, nanoseconds.
    latency: Histogram,
    /// When the connection stopped.
    finished: Option<Instant>,
}

impl ConnectionReport {
    fn error(&mut self, what: String) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(what);
        }
    }
}

/// Runs `plan` on the current runtime. `on_start` is called once every connection is warmed up,
/// just before the measured phase begins (the harness reads the server's counters there).
pub async fn run(plan: LoadPlan, on_start: impl FnOnce()) -> LoadReport {
    let connections = plan.connections.max(1);
    let plan = Arc::new(plan);
    let barrier = Arc::new(Barrier::new(connections + 1));
    let (go, go_rx) = watch::channel(None::<Instant>);
    let tasks: Vec<_> = (0..connections)
        .map(|index| {
            tokio::spawn(connection(
                plan.clone(),
                index,
                barrier.clone(),
                go_rx.clone(),
            ))
        })
        .collect();

    barrier.wait().await;
    on_start();
    let start = Instant::now();
    // Only fails when every receiver is gone, i.e. every connection task already ended.
    let _ = go.send(Some(start + plan.duration));

    let mut report = LoadReport::default();
    let mut last_finish = start;
    for task in tasks {
        match task.await {
            Ok(connection) => {
                report.requests += connection.requests;
                report.errors += connection.errors;
                if report.first_error.is_none() {
                    report.first_error = connection.first_error;
                }
                report.latency.merge(&connection.latency);
                if let Some(finished) = connection.finished {
                    last_finish = last_finish.max(finished);
                }
            }
            Err(join_error) => {
                report.errors += 1;
                report
                    .first_error
                    .get_or_insert_with(|| format!("a connection task failed: {join_error}"));
            }
        }
    }
    report.elapsed = last_finish.saturating_duration_since(start);
    report
}

/// One connection's life: connect, warm up, wait for the start, loop until the deadline.
async fn connection(
    plan: Arc<LoadPlan>,
    index: usize,
    barrier: Arc<Barrier>,
    mut go: watch::Receiver<Option<Instant>>,
) -> ConnectionReport {
    let mut report = ConnectionReport::default();
    let requests = &plan.requests[..];
    let mut next = index;

    let mut conn = match Connection::open(plan.addr, plan.tls.as_ref()).await {
        Ok(conn) => Some(conn),
        Err(e) => {
            report.error(format!("cannot connect to {}: {e}", plan.addr));
            None
        }
    };
    if conn.is_some() {
        for _ in 0..WARMUP_REQUESTS {
            let Some(request) = requests.get(next % requests.len().max(1)) else {
                break;
            };
            next += 1;
            let c = match conn.as_mut() {
                Some(c) => c,
                None => match Connection::open(plan.addr, plan.tls.as_ref()).await {
                    Ok(c) => conn.insert(c),
                    Err(e) => {
                        report.error(format!("warm-up: cannot reconnect: {e}"));
                        break;
                    }
                },
            };
            match c.exchange(request).await {
                Ok(status) if status == plan.expected_status => {}
                Ok(status) => report.error(format!(
                    "warm-up: status {status}, expected {}",
                    plan.expected_status
                )),
                Err(e) => {
                    report.error(format!("warm-up: {e}"));
                    break;
                }
            }
            // `Connection: close` scenarios open a new connection for every request.
            if c.closed_by_server {
                conn = None;
            }
        }
    }

    barrier.wait().await;
    let deadline = match go.wait_for(|deadline| deadline.is_some()).await {
        Ok(deadline) => *deadline,
        Err(_) => None,
    };
    let Some(deadline) = deadline else {
        report.finished = Some(Instant::now());
        return report;
    };

    while !requests.is_empty() {
        let started = Instant::now();
        if started >= deadline {
            break;
        }
        let request = &requests[next % requests.len()];
        next += 1;
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Connection::open(plan.addr, plan.tls.as_ref()).await {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    report.error(format!("cannot reconnect to {}: {e}", plan.addr));
                    break;
                }
            },
        };
        match c.exchange(request).await {
            Ok(status) => {
                report
                    .latency
                    .record(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
                report.requests += 1;
                if status != plan.expected_status {
                    report.error(format!(
                        "status {status}, expected {}",
                        plan.expected_status
                    ));
                }
                if c.closed_by_server {
                    conn = None;
                }
            }
            Err(e) => {
                report.error(e.to_string());
                conn = None;
            }
        }
    }
    report.finished = Some(Instant::now());
    report
}

/// The socket, plain or TLS.
enum Stream {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP (boxed: the session state is large).
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Stream {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.write_all(bytes).await,
            Stream::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    async fn read_buf(&mut self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read_buf(buf).await,
            Stream::Tls(s) => s.read_buf(buf).await,
        }
    }
}

/// A keep-alive client connection with its read buffer.
struct Connection {
    /// The socket.
    stream: Stream,
    /// Bytes read and not yet consumed: `buf[..filled]`.
    buf: Vec<u8>,
    /// The last response said `Connection: close`.
    closed_by_server: bool,
}

impl Connection {
    async fn open(
        addr: SocketAddr,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> io::Result<Connection> {
        let tcp = TcpStream::connect(addr).await?;
        tcp.set_nodelay(true)?;
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => {
                let name = rustls::pki_types::ServerName::try_from("localhost")
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await?;
                Stream::Tls(Box::new(tls))
            }
        };
        Ok(Connection {
            stream,
            buf: Vec::with_capacity(16 * 1024),
            closed_by_server: false,
        })
    }

    /// Sends one request and reads its whole response; returns the status.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<u16> {
        self.stream.write_all(request).await?;
        let head = loop {
            match parse_head(&self.buf)? {
                Some(head) => break head,
                None if self.buf.len() > MAX_HEAD_BYTES => {
                    return Err(malformed("response head too large"))
                }
                None => self.fill().await?,
            }
        };
        self.closed_by_server = head.close;
        self.consume(head.length);
        match head.body {
            Body::Length(length) => {
                while self.buf.len() < length {
                    self.fill().await?;
                }
                self.consume(length);
            }
            Body::Chunked => self.skip_chunked().await?,
            Body::UntilClose => {
                // Only valid with `Connection: close`: read to the end.
                loop {
                    self.buf.clear();
                    if self.stream.read_buf(&mut self.buf).await? == 0 {
                        break;
                    }
                }
                self.closed_by_server = true;
            }
        }
        Ok(head.status)
    }

    /// Reads more bytes into the buffer; end of stream is an error (a response was due).
    async fn fill(&mut self) -> io::Result<()> {
        self.buf.reserve(4096);
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection mid-response",
            ));
        }
        Ok(())
    }

    /// Drops the first `n` buffered bytes.
    fn consume(&mut self, n: usize) {
        if n >= self.buf.len() {
            self.buf.clear();
        } else {
            self.buf.drain(..n);
        }
    }

    /// Skips a chunked body and its trailers.
    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line = self.line().await?;
            let size_text = line.split(|&b| b == b';').next().unwrap_or(&[]);
            let size_text = std::str::from_utf8(size_text)
                .map_err(|_| malformed("bad chunk size"))?
                .trim();
            let size =
                usize::from_str_radix(size_text, 16).map_err(|_| malformed("bad chunk size"))?;
            if size == 0 {
                // Trailers, until an empty line.
                while !self.line().await?.is_empty() {}
                return Ok(());
            }
            while self.buf.len() < size + 2 {
                self.fill().await?;
            }
            self.consume(size + 2);
        }
    }

    /// Takes one CRLF-terminated line off the buffer (without the CRLF).
    async fn line(&mut self) -> io::Result<Vec<u8>> {
        loop {
            if let Some(end) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf[..end].to_vec();
                self.consume(end + 2);
                return Ok(line);
            }
            if self.buf.len() > MAX_HEAD_BYTES {
                return Err(malformed("chunk line too long"));
            }
            self.fill().await?;
        }
    }
}

/// How the body of a response is delimited.
#[derive(Debug, PartialEq)]
enum Body {
    /// `Content-Length` bytes (0 for statuses without a body).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed response head.
#[derive(Debug, PartialEq)]
struct Head {
    /// Status code.
    status: u16,
    /// Bytes of the head, blank line included.
    length: usize,
    /// How the body is delimited.
    body: Body,
    /// The server will close the connection after this response.
    close: bool,
}

fn malformed(what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("malformed response: {what}"),
    )
}

/// Parses a response head at the start of `buf`; `None` when it is not complete yet.
fn parse_head(buf: &[u8]) -> io::Result<Option<Head>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let length = match response.parse(buf) {
        Ok(httparse::Status::Complete(length)) => length,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(malformed(&e.to_string())),
    };
    let status = response.code.ok_or_else(|| malformed("no status"))?;
    let mut content_length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            let text =
                std::str::from_utf8(header.value).map_err(|_| malformed("content-length"))?;
            content_length = Some(
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| malformed("content-length"))?,
            );
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = header
                .value
                .split(|&b| b == b',')
                .any(|coding| coding.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if header.name.eq_ignore_ascii_case("connection") {
            close = header
                .value
                .split(|&b| b == b',')
                .any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
    }
    let body = if status == 204 || status == 304 || (100..200).contains(&status) {
        Body::Length(0)
    } else if chunked {
        Body::Chunked
    } else if let Some(length) = content_length {
        Body::Length(length)
    } else {
        Body::UntilClose
    };
    if body == Body::UntilClose && !close {
        return Err(malformed(
            "neither content-length nor chunked on keep-alive",
        ));
    }
    Ok(Some(Head {
        status,
        length,
        body,
        close,
    }))
}

/// A `GET` request with the given extra header lines (each `"Name: value"`).
pub fn get_request(addr: SocketAddr, path: &str, headers: &[String]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_are_parsed() {
        let text = b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n{\"ok\":true}";
        let head = parse_head(text).unwrap().unwrap();
        assert_eq!(head.status, 200);
        assert_eq!(head.length, text.len() - 11);
        assert_eq!(head.body, Body::Length(11));
        assert!(!head.close);

        let head = parse_head(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (head.status, head.body, head.close),
            (401, Body::Chunked, true)
        );

        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\n\r\n").is_err());
        assert!(parse_head(b"garbage\r\n\r\n").is_err());
    }

    #[test]
    fn requests_are_rendered() {
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let request = get_request(addr, "/a/b", &["API-Token: x".into()]);
        assert_eq!(
            request,
            b"GET /a/b HTTP/1.1\r\nHost: 127.0.0.1:9\r\nAPI-Token: x\r\n\r\n"
        );
    }

    #[tokio::test]
    async fn chunked_and_sized_bodies_are_read_on_one_connection() {
        use tokio::net::TcpListener;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = vec![0u8; 1024];
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n4\r\nabcd\r\n2;x=y\r\nef\r\n0\r\n\r\n",
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\n\r\nabc",
            ];
            for answer in answers {
                let _ = socket.read(&mut buf).await.unwrap();
                socket.write_all(answer).await.unwrap();
            }
        });
        let mut conn = Connection::open(addr, None).await.unwrap();
        let request = get_request(addr, "/", &[]);
        assert_eq!(conn.exchange(&request).await.unwrap(), 200);
        assert!(conn.buf.is_empty());
        assert_eq!(conn.exchange(&request).await.unwrap(), 404);
        assert!(conn.buf.is_empty());
        server.await.unwrap();
    }
}
