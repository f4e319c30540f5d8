//! Request bytes for the raw client: heads, GET, HEAD, POST and chunked bodies.

/// The Host field every HTTP/1.1 request here carries.
pub const HOST: &str = "Host: test";

/// A request head: `line`, each of `headers`, and the empty line.
pub fn head_bytes(line: &str, headers: &[&str]) -> Vec<u8> {
    let mut head = format!("{line}\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// `method path HTTP/1.1` with a Host, `headers`, and `body` (if any) after its
/// Content-Length.
pub fn build(method: &str, path: &str, headers: &[&str], body: Option<&[u8]>) -> Vec<u8> {
    let length = body.map(|b| format!("Content-Length: {}", b.len()));
    let mut fields = vec![HOST];
    fields.extend_from_slice(headers);
    fields.extend(length.as_deref());
    let mut bytes = head_bytes(&format!("{method} {path} HTTP/1.1"), &fields);
    bytes.extend_from_slice(body.unwrap_or_default());
    bytes
}

/// `GET path HTTP/1.1` with a Host.
pub fn get(path: &str) -> Vec<u8> {
    get_with(path, &[])
}

/// `GET path HTTP/1.1` with a Host and `headers`.
pub fn get_with(path: &str, headers: &[&str]) -> Vec<u8> {
    build("GET", path, headers, None)
}

/// `HEAD path HTTP/1.1` with a Host.
pub fn head(path: &str) -> Vec<u8> {
    build("HEAD", path, &[], None)
}

/// `GET path HTTP/1.0` with `headers` (no Host).
pub fn get10(path: &str, headers: &[&str]) -> Vec<u8> {
    head_bytes(&format!("GET {path} HTTP/1.0"), headers)
}

/// The head of `POST path HTTP/1.1` with a Host, `Content-Length: len` and `headers`.
pub fn post_head(path: &str, len: usize, headers: &[&str]) -> Vec<u8> {
    let length = format!("Content-Length: {len}");
    head_bytes(
        &format!("POST {path} HTTP/1.1"),
        &[&[HOST, length.as_str()], headers].concat(),
    )
}

/// `POST path HTTP/1.1` with `body` delimited by Content-Length.
pub fn post(path: &str, body: &[u8]) -> Vec<u8> {
    [post_head(path, body.len(), &[]), body.to_vec()].concat()
}

/// The head of `POST path HTTP/1.1` with `Transfer-Encoding: chunked`.
pub fn chunked_head(path: &str) -> Vec<u8> {
    head_bytes(
        &format!("POST {path} HTTP/1.1"),
        &[HOST, "Transfer-Encoding: chunked"],
    )
}

/// `POST path HTTP/1.1` with a chunked body made of `chunks`.
pub fn chunked_post(path: &str, chunks: &[&[u8]]) -> Vec<u8> {
    let mut out = chunked_head(path);
    for chunk in chunks {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}
