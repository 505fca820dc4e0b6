//! A deliberately literal HTTP/1.x client for corpus replay: it writes a record's bytes as
//! they are (custom methods, malformed targets, duplicate headers) and reads back one response.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// One keep-alive connection to a server.
pub struct Conn {
    addr: SocketAddr,
    timeout: Duration,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    /// A connection to `url` (`http://host:port`), opened lazily.
    pub fn new(url: &str, timeout: Duration) -> Result<Conn, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("{url}: only http:// URLs can be replayed to"))?;
        let hostport = rest.split('/').next().unwrap_or(rest);
        let addr = hostport
            .to_socket_addrs()
            .map_err(|e| format!("{url}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url}: no address"))?;
        Ok(Conn {
            addr,
            timeout,
            stream: None,
        })
    }

    /// Sends `data` and returns the response status (0 when there is no usable response).
    /// `keep`: whether the connection may be reused afterwards.
    pub fn send(&mut self, data: &[u8], head_request: bool, keep: bool) -> u16 {
        for attempt in 0..2 {
            let reused = self.stream.is_some();
            match self.once(data, head_request, keep) {
                Ok(status) => return status,
                Err(_) => {
                    self.stream = None;
                    // A kept-alive connection may have been closed by the server meanwhile.
                    if !(reused && attempt == 0) {
                        return 0;
                    }
                }
            }
        }
        0
    }

    fn once(&mut self, data: &[u8], head_request: bool, keep: bool) -> std::io::Result<u16> {
        if self.stream.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, self.timeout)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(self.timeout))?;
            s.set_write_timeout(Some(self.timeout))?;
            self.stream = Some(BufReader::with_capacity(64 * 1024, s));
        }
        let r = self
            .stream
            .as_mut()
            .ok_or_else(|| std::io::Error::other("no stream"))?;
        r.get_mut().write_all(data)?;
        let (status, close) = loop {
            let (status, close) = read_response(r, head_request)?;
            if !(100..200).contains(&status) {
                break (status, close);
            }
        };
        if close || !keep {
            self.stream = None;
        }
        Ok(status)
    }
}

fn bad(msg: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, msg.to_string())
}

/// Reads one response; returns its status and whether the server will close the connection.
fn read_response(r: &mut BufReader<TcpStream>, head_request: bool) -> std::io::Result<(u16, bool)> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(bad("connection closed"));
    }
    let mut parts = line.split_whitespace();
    let version = parts.next().unwrap_or("");
    let status: u16 = parts
        .next()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    let mut length: Option<usize> = None;
    let mut chunked = false;
    let mut close = version == "HTTP/1.0";
    let mut header_bytes = 0;
    loop {
        line.clear();
        let n = r.read_line(&mut line)?;
        header_bytes += n;
        if n == 0 || header_bytes > 256 * 1024 {
            return Err(bad("truncated headers"));
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "content-length" => length = v.parse().ok(),
                "transfer-encoding" => chunked = v.to_ascii_lowercase().contains("chunked"),
                "connection" => {
                    let v = v.to_ascii_lowercase();
                    if v.contains("close") {
                        close = true;
                    } else if v.contains("keep-alive") {
                        close = false;
                    }
                }
                _ => {}
            }
        }
    }
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Ok((status, close));
    }
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| bad("bad chunk size"))?;
            if size == 0 {
                // Trailers until an empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            std::io::copy(&mut r.by_ref().take(size as u64 + 2), &mut std::io::sink())?;
        }
    } else if let Some(n) = length {
        std::io::copy(&mut r.by_ref().take(n as u64), &mut std::io::sink())?;
    } else {
        std::io::copy(r, &mut std::io::sink())?;
        close = true;
    }
    Ok((status, close))
}
