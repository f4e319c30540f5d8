//! Content-Type from a file name's extension.

use std::path::Path;

/// The types that get `; charset=utf-8` besides every `text/*`: the textual types that are
/// not under `text/` and that browsers otherwise decode with a guessed charset.
pub const CHARSET_TYPES: [&str; 4] = [
    "application/javascript",
    "application/json",
    "application/xml",
    "image/svg+xml",
];

/// The Content-Type for `path` by its extension (mime_guess's first guess), or
/// `application/octet-stream` when unknown; textual types get `; charset=utf-8` (`text/*`
/// and [`CHARSET_TYPES`]).
///
/// For a precompressed sibling pass the original's name (`app.js`, not `app.js.gz`): the
/// coding goes in Content-Encoding, not in the type.
pub fn content_type(path: &Path) -> String {
    let essence = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if essence.starts_with("text/") || CHARSET_TYPES.contains(&essence) {
        format!("{essence}; charset=utf-8")
    } else {
        essence.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ct(name: &str) -> String {
        content_type(Path::new(name))
    }

    #[test]
    fn text_types_get_a_charset() {
        assert_eq!(ct("index.html"), "text/html; charset=utf-8");
        assert_eq!(ct("style.css"), "text/css; charset=utf-8");
        assert_eq!(ct("notes.txt"), "text/plain; charset=utf-8");
        assert_eq!(ct("a/b/README.md"), "text/markdown; charset=utf-8");
    }

    #[test]
    fn listed_application_types_get_a_charset() {
        assert!(
            ct("app.js").ends_with("javascript; charset=utf-8"),
            "{}",
            ct("app.js")
        );
        assert_eq!(ct("data.json"), "application/json; charset=utf-8");
        assert_eq!(ct("logo.svg"), "image/svg+xml; charset=utf-8");
        let xml = ct("feed.xml");
        assert!(xml == "application/xml; charset=utf-8" || xml == "text/xml; charset=utf-8");
    }

    #[test]
    fn binary_types_do_not() {
        assert_eq!(ct("photo.png"), "image/png");
        assert_eq!(ct("photo.JPG"), "image/jpeg");
        assert_eq!(ct("archive.zip"), "application/zip");
        assert_eq!(ct("doc.pdf"), "application/pdf");
        assert_eq!(ct("font.woff2"), "font/woff2");
        assert_eq!(ct("movie.mp4"), "video/mp4");
        assert_eq!(ct("module.wasm"), "application/wasm");
    }

    #[test]
    fn unknown_is_octet_stream() {
        assert_eq!(ct("blob.unknownext"), "application/octet-stream");
        assert_eq!(ct("Makefile"), "application/octet-stream");
        assert_eq!(ct(""), "application/octet-stream");
    }
}
