//! A minimal blocking HTTP/1.1 client over `std::net::TcpStream`, so that every request's fate is
//! known exactly: refused before sending, written but unanswered, or answered with a status.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a request may wait for its answer. Longer than any server-side timeout in the
/// scenarios, so that a missing answer means a dropped connection, not a slow server.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Conn {
    reader: BufReader<TcpStream>,
}

/// An HTTP answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: bool,
    /// The server will close the connection after this answer.
    pub close: bool,
    pub body: Vec<u8>,
}

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Conn {
    pub fn open(port: u16) -> io::Result<Self> {
        let stream = TcpStream::connect_timeout(&addr(port), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(READ_TIMEOUT))?;
        stream.set_write_timeout(Some(Duration::from_secs(10)))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            reader: BufReader::new(stream),
        })
    }

    /// Writes one request. An error here means the request may or may not have reached the server.
    pub fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> io::Result<()> {
        let mut head = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        let mut request = head.into_bytes();
        request.extend_from_slice(body);
        let stream = self.reader.get_mut();
        stream.write_all(&request)?;
        stream.flush()
    }

    /// Reads one answer (head and body).
    pub fn receive(&mut self) -> io::Result<Answer> {
        let status_line = self.line()?;
        let status = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| bad(format!("bad status line {status_line:?}")))?;
        let mut length: Option<usize> = None;
        let mut chunked = false;
        let mut close = false;
        let mut retry_after = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                return Err(bad(format!("bad header {line:?}")));
            };
            let value = value.trim();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => {
                    length = Some(value.parse().map_err(|_| bad("bad content-length"))?)
                }
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "connection" => close = value.eq_ignore_ascii_case("close"),
                "retry-after" => retry_after = !value.is_empty(),
                _ => {}
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                let size_line = self.line()?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .map_err(|_| bad("bad chunk size"))?;
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.line()?.is_empty() {}
                    break;
                }
                self.take(size, &mut body)?;
                self.take(2, &mut Vec::new())?;
            }
        } else if let Some(n) = length {
            self.take(n, &mut body)?;
        } else if close {
            self.reader.read_to_end(&mut body)?;
        }
        Ok(Answer {
            status,
            retry_after,
            close,
            body,
        })
    }

    fn line(&mut self) -> io::Result<String> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed without an answer",
            ));
        }
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }

    /// Reads `n` bytes into `into`.
    fn take(&mut self, n: usize, into: &mut Vec<u8>) -> io::Result<()> {
        let copied = (&mut self.reader).take(n as u64).read_to_end(into)?;
        if copied < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-body",
            ));
        }
        Ok(())
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// `GET path` on a fresh connection.
pub fn get(port: u16, path: &str) -> io::Result<Answer> {
    let mut conn = Conn::open(port)?;
    conn.send("GET", path, &[("Connection", "close")], b"")?;
    conn.receive()
}
