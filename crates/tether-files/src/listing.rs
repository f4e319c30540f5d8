//! Folder listings: reading a folder into entries, and rendering them as HTML or JSON.
//!
//! The links are relative (`name`, `sub/`, `../`), so the listing must be served at a URL
//! ending with `/`: the caller redirects `/dir` to `/dir/` first, as nginx does.

use std::fs;
use std::io;
use std::path::Path;

use crate::quality::weight_of;
use crate::resolve::Root;

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name.
    pub name: String,
    /// A folder (for a symlink: its target is a folder).
    pub is_dir: bool,
    /// The length in bytes (as the file system reports it for a folder).
    pub size: u64,
    /// The modification time in seconds since the epoch.
    pub mtime: u64,
}

/// Whether a name is listed: a name that the path mapping would refuse (`con`, a
/// backslash, a control byte...) could not be fetched, and a dot name only when asked.
pub fn visible(name: &str, show_hidden: bool) -> bool {
    crate::path::check_segment(name).is_ok() && (show_hidden || !name.starts_with('.'))
}

/// Folders first, then by name (byte order, so the result does not depend on a locale).
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
}

/// Reads the folder at `dir` (a path [`Root::resolve`] returned) into sorted entries.
///
/// Skipped: names that are not UTF-8 or not [`visible`], symlinks that dangle or lead out
/// of `root`, special files, and entries that vanish while being read.
///
/// # Errors
/// The error of `read_dir` on the folder itself.
pub fn read(root: &Root, dir: &Path, show_hidden: bool) -> io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for dirent in fs::read_dir(dir)? {
        let Ok(dirent) = dirent else { continue };
        let Ok(name) = dirent.file_name().into_string() else {
            continue;
        };
        if !visible(&name, show_hidden) {
            continue;
        }
        let Ok(file_type) = dirent.file_type() else {
            continue;
        };
        let meta = if file_type.is_symlink() {
            match root.follow(&dirent.path()).and_then(|target| {
                fs::metadata(target).map_err(|e| crate::resolve::Refused::Io(e.kind()))
            }) {
                Ok(meta) => meta,
                Err(_) => continue,
            }
        } else {
            match dirent.metadata() {
                Ok(meta) => meta,
                Err(_) => continue,
            }
        };
        if !meta.is_file() && !meta.is_dir() {
            continue;
        }
        let mtime = crate::validators::Stamp::from_metadata(&meta).mtime_secs();
        entries.push(Entry {
            name,
            is_dir: meta.is_dir(),
            size: meta.len(),
            mtime,
        });
    }
    sort(&mut entries);
    Ok(entries)
}

/// Whether the client prefers JSON: `application/json` is weighted above zero and above
/// `text/html` in `Accept` (every field line, in order). Wildcards count for neither, so a
/// browser's `text/html,...,*/*;q=0.8` gets HTML and `Accept: application/json` gets JSON.
pub fn wants_json<'a, I>(accept: I) -> bool
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let values: Vec<&[u8]> = accept.into_iter().collect();
    let json = weight_of(values.iter().copied(), b"application/json").unwrap_or(0);
    let html = weight_of(values.iter().copied(), b"text/html").unwrap_or(0);
    json > 0 && json > html
}

/// The listing as an HTML page titled with `path`, the decoded request path. Every name
/// is HTML-escaped and every link percent-encoded; `../` is listed unless `at_root`.
pub fn html(path: &str, entries: &[Entry], at_root: bool) -> String {
    let title = escape_html(path);
    let mut out = format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width\">\n\
         <title>Index of {title}</title>\n\
         <style>body{{font-family:system-ui,sans-serif;margin:2em}}\
         td{{padding:.1em 1.5em .1em 0}}td.size{{text-align:right}}</style>\n\
         </head>\n<body>\n<h1>Index of {title}</h1>\n<table>\n\
         <thead><tr><th>Name</th><th>Size</th><th>Modified</th></tr></thead>\n<tbody>\n"
    );
    if !at_root {
        out.push_str("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
    }
    for e in entries {
        let slash = if e.is_dir { "/" } else { "" };
        let size = if e.is_dir {
            "<td class=\"size\">-</td>".to_owned()
        } else {
            format!(
                "<td class=\"size\" title=\"{} bytes\">{}</td>",
                e.size,
                human_size(e.size)
            )
        };
        out.push_str(&format!(
            "<tr><td><a href=\"{href}{slash}\">{name}{slash}</a></td>{size}<td>{date}</td></tr>\n",
            href = encode_href(&e.name),
            name = escape_html(&e.name),
            date = crate::validators::last_modified(e.mtime),
        ));
    }
    out.push_str("</tbody>\n</table>\n</body>\n</html>\n");
    out
}

/// The listing as JSON: `[{"name":..,"type":"file"|"dir","size":..,"mtime":..}]`, with
/// `mtime` in seconds since the epoch.
pub fn json(entries: &[Entry]) -> String {
    let rows: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!({
                "name": e.name,
                "type": if e.is_dir { "dir" } else { "file" },
                "size": e.size,
                "mtime": e.mtime,
            })
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}

/// `& < > " '` as character references, for text and attribute values alike.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as a relative link: every byte but `A-Z a-z 0-9 - . _ ~` percent-encoded, so
/// `?`, `#`, `%` and `:` (`javascript:x` would read as a scheme) stay part of the name.
pub fn encode_href(name: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

/// A size for people: bytes below 1 KiB, else one decimal in KiB, MiB, GiB, TiB, PiB or EiB.
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::TempDir;

    fn entry(name: &str, is_dir: bool, size: u64) -> Entry {
        Entry {
            name: name.to_owned(),
            is_dir,
            size,
            mtime: 784_111_777,
        }
    }

    #[test]
    fn sorts_folders_first_then_names() {
        let mut v = vec![
            entry("b.txt", false, 1),
            entry("zdir", true, 0),
            entry("a.txt", false, 1),
            entry("adir", true, 0),
            entry("B.txt", false, 1),
        ];
        sort(&mut v);
        let names: Vec<&str> = v.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["adir", "zdir", "B.txt", "a.txt", "b.txt"]);
    }

    #[test]
    fn visibility() {
        assert!(visible("a.txt", false));
        assert!(!visible(".env", false));
        assert!(visible(".env", true));
        assert!(!visible("con", true));
        assert!(!visible("a\\b", true));
        assert!(!visible("a\nb", true));
        assert!(!visible("%2e%2e", true));
    }

    #[test]
    fn hostile_names_are_escaped_and_encoded() {
        let entries = [
            entry("<script>alert(1)</script>", false, 10),
            entry("a\"b'c&d.txt", false, 10),
            entry("with space#frag?q=1", false, 10),
            entry("javascript:alert(1)", false, 10),
            entry("100%.txt", false, 10),
        ];
        let page = html("/<b>&\"/", &entries, false);
        assert!(!page.contains("<script>"));
        assert!(!page.contains("<b>"));
        assert!(page.contains("<title>Index of /&lt;b&gt;&amp;&quot;/</title>"));
        assert!(page.contains(
            "<a href=\"%3Cscript%3Ealert%281%29%3C%2Fscript%3E\">&lt;script&gt;alert(1)&lt;/script&gt;</a>"
        ));
        assert!(page.contains("<a href=\"a%22b%27c%26d.txt\">a&quot;b&#39;c&amp;d.txt</a>"));
        assert!(page.contains("<a href=\"with%20space%23frag%3Fq%3D1\">with space#frag?q=1</a>"));
        assert!(page.contains("<a href=\"javascript%3Aalert%281%29\">"));
        assert!(page.contains("<a href=\"100%25.txt\">"));
        // Every href decodes back to a name that maps to the same single segment (a real
        // file name cannot hold `/`, so the script tag is only a rendering case).
        for e in entries.iter().filter(|e| !e.name.contains('/')) {
            let href = encode_href(&e.name);
            let mapped = crate::path::map(format!("/{href}").as_bytes()).unwrap();
            assert_eq!(mapped.segments(), std::slice::from_ref(&e.name));
        }
    }

    #[test]
    fn encode_href_keeps_unreserved_and_encodes_utf8() {
        assert_eq!(encode_href("Az09-._~"), "Az09-._~");
        assert_eq!(encode_href("café"), "caf%C3%A9");
        assert_eq!(encode_href("a/b"), "a%2Fb");
    }

    #[test]
    fn parent_link_except_at_root() {
        let with = html("/docs/", &[], false);
        assert!(with.contains("<a href=\"../\">../</a>"));
        let without = html("/", &[], true);
        assert!(!without.contains("../"));
    }

    #[test]
    fn folders_get_a_slash_and_files_a_size() {
        let page = html(
            "/",
            &[entry("sub", true, 4096), entry("big.bin", false, 1536)],
            true,
        );
        assert!(page.contains("<a href=\"sub/\">sub/</a></td><td class=\"size\">-</td>"));
        assert!(page.contains("<td class=\"size\" title=\"1536 bytes\">1.5 KiB</td>"));
        assert!(page.contains("<td>Sun, 06 Nov 1994 08:49:37 GMT</td>"));
    }

    #[test]
    fn human_sizes() {
        assert_eq!(human_size(0), "0 B");
        assert_eq!(human_size(1023), "1023 B");
        assert_eq!(human_size(1024), "1.0 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(10 * 1024 * 1024), "10.0 MiB");
        assert_eq!(human_size(3 << 30), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16.0 EiB");
    }

    #[test]
    fn json_form() {
        let out = json(&[entry("sub", true, 0), entry("a\"b.txt", false, 12)]);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"name": "sub", "type": "dir", "size": 0, "mtime": 784_111_777},
                {"name": "a\"b.txt", "type": "file", "size": 12, "mtime": 784_111_777},
            ])
        );
        assert_eq!(json(&[]), "[]");
    }

    #[test]
    fn json_is_chosen_by_accept() {
        let w = |values: &[&str]| wants_json(values.iter().map(|v| v.as_bytes()));
        assert!(w(&["application/json"]));
        assert!(w(&["application/json, */*;q=0.1"]));
        assert!(w(&["text/html;q=0.5", "application/json"]));
        assert!(w(&["Application/JSON"]));
        assert!(!w(&[]));
        assert!(!w(&[
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ]));
        assert!(!w(&["*/*"]));
        assert!(!w(&["application/json;q=0"]));
        assert!(!w(&["text/html, application/json"]));
    }

    #[test]
    fn reads_a_folder() {
        let tmp = TempDir::new("listing");
        let root_dir = tmp.0.join("root");
        fs::create_dir_all(root_dir.join("sub")).unwrap();
        fs::write(root_dir.join("b.txt"), "bb").unwrap();
        fs::write(root_dir.join("a.txt"), "a").unwrap();
        fs::write(root_dir.join(".hidden"), "h").unwrap();
        fs::write(root_dir.join("nul.txt"), "device name").unwrap();
        fs::write(tmp.0.join("secret.txt"), "s").unwrap();
        std::os::unix::fs::symlink(tmp.0.join("secret.txt"), root_dir.join("leak")).unwrap();
        std::os::unix::fs::symlink("a.txt", root_dir.join("alias")).unwrap();
        std::os::unix::fs::symlink("missing", root_dir.join("dangling")).unwrap();
        let root = Root::new(&root_dir).unwrap();

        let entries = read(&root, root.path(), false).unwrap();
        let rows: Vec<(&str, bool, u64)> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.is_dir, e.size))
            .collect();
        assert_eq!(
            rows[1..],
            [
                ("a.txt", false, 1),
                ("alias", false, 1),
                ("b.txt", false, 2)
            ]
        );
        assert_eq!((rows[0].0, rows[0].1), ("sub", true));
        assert!(entries[1].mtime > 1_600_000_000);

        let with_hidden = read(&root, root.path(), true).unwrap();
        assert!(with_hidden.iter().any(|e| e.name == ".hidden"));
        assert!(read(&root, &root.path().join("missing"), false).is_err());
    }
}
