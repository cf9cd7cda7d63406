//! A strict `multipart/form-data` parser (RFC 7578) for tests that check what wabridge uploads
//! to Meta's media endpoint: the form's parts in order, each with its name, file name, type and
//! bytes. Strict on purpose: a body a lenient server might accept still fails here.

/// A multipart part: its name, file name, content type and bytes.
#[derive(Debug, PartialEq)]
pub struct Part {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub data: Vec<u8>,
}

/// Parses a `multipart/form-data` body (RFC 7578) strictly: every part between boundary
/// lines, headers then a blank line, the closing boundary last.
pub fn parts(content_type: &str, body: &[u8]) -> Vec<Part> {
    let boundary = content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .unwrap_or_else(|| panic!("no boundary in {content_type}"))
        .trim_matches('"');
    assert!(
        content_type.starts_with("multipart/form-data"),
        "{content_type}"
    );
    let delimiter = format!("--{boundary}");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|p| p + from)
    };
    assert!(
        body.starts_with(delimiter.as_bytes()),
        "starts with the boundary"
    );
    let closing = format!("\r\n--{boundary}--\r\n");
    assert!(
        body.ends_with(closing.as_bytes()),
        "ends with the closing boundary"
    );
    let separator = format!("\r\n--{boundary}");
    let mut out = Vec::new();
    let mut at = delimiter.len();
    loop {
        if body[at..].starts_with(b"--") {
            return out;
        }
        assert!(body[at..].starts_with(b"\r\n"));
        let head_end = find(body, b"\r\n\r\n", at).expect("part headers end");
        let head = String::from_utf8(body[at + 2..head_end].to_vec()).unwrap();
        let data_end = find(body, separator.as_bytes(), head_end + 4).expect("part ends");
        let mut part = Part {
            name: String::new(),
            filename: None,
            content_type: None,
            data: body[head_end + 4..data_end].to_vec(),
        };
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').expect("a header line");
            match k.trim().to_ascii_lowercase().as_str() {
                "content-disposition" => {
                    assert!(v.trim().starts_with("form-data"), "{v}");
                    for p in v.split(';').skip(1) {
                        let (pk, pv) = p.trim().split_once('=').unwrap();
                        let pv = pv.trim_matches('"').to_string();
                        match pk {
                            "name" => part.name = pv,
                            "filename" => part.filename = Some(pv),
                            other => panic!("unexpected parameter {other}"),
                        }
                    }
                }
                "content-type" => part.content_type = Some(v.trim().to_string()),
                other => panic!("unexpected part header {other}"),
            }
        }
        out.push(part);
        at = data_end + separator.len();
    }
}
