//! Just enough HTTP/1.1 for an OpenAI-style API on loopback: read one request (request
//! line, headers, a Content-Length body), write one response, close the connection.
//! Streaming responses are server-sent events written and flushed as they happen.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

/// Largest header block and body accepted.
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

pub struct HttpRequest {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// Why a request could not be read: (HTTP status, message).
pub type HttpError = (u16, String);

/// Read one request from the stream.
pub fn read_request(stream: &TcpStream) -> Result<HttpRequest, HttpError> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    let mut head_bytes = 0;
    let mut read_line = |line: &mut String| -> Result<(), HttpError> {
        line.clear();
        let n = reader.by_ref().take((MAX_HEAD - head_bytes) as u64).read_line(line).map_err(|e| (400, format!("reading the request: {e}")))?;
        head_bytes += n;
        if n == 0 || head_bytes >= MAX_HEAD {
            return Err((400, "incomplete or oversized request head".into()));
        }
        Ok(())
    };
    read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
        return Err((400, format!("malformed request line {:?}", line.trim_end())));
    };
    let (method, path) = (method.to_string(), target.split('?').next().unwrap_or("").to_string());
    let mut content_length = 0usize;
    loop {
        read_line(&mut line)?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                content_length = value.trim().parse().map_err(|_| (400, format!("bad Content-Length {:?}", value.trim())))?;
            } else if name == "transfer-encoding" && value.trim().eq_ignore_ascii_case("chunked") {
                return Err((411, "chunked request bodies are not supported: send Content-Length".into()));
            }
        }
    }
    if content_length > MAX_BODY {
        return Err((413, format!("request body of {content_length} bytes is over the {MAX_BODY}-byte limit")));
    }
    let mut body = vec![0u8; content_length];
    reader.read_exact(&mut body).map_err(|e| (400, format!("reading the {content_length}-byte body: {e}")))?;
    Ok(HttpRequest { method, path, body })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Write a complete JSON response.
pub fn write_json(stream: &mut TcpStream, status: u16, body: &serde_json::Value) -> std::io::Result<()> {
    let body = body.to_string();
    write!(
        stream,
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )?;
    stream.flush()
}

/// Start a server-sent-events response; then [`write_event`] per chunk.
pub fn start_events(stream: &mut TcpStream) -> std::io::Result<()> {
    write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n")?;
    stream.flush()
}

/// One `data: ...` event, flushed at once (an error means the client is gone).
pub fn write_event(stream: &mut TcpStream, data: &str) -> std::io::Result<()> {
    write!(stream, "data: {data}\n\n")?;
    stream.flush()
}
