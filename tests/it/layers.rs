//! The dependency rule of ARCHITECTURE.md ("Layers"), checked on the source text: every
//! `crate::…` and `super::…` path in `src/**/*.rs` (use lines and inline paths, `{…}` groups
//! included, comments left out) is an import edge between modules.
//!
//! - Each top-level module has a layer; it may import only modules of lower layers. That
//!   makes the top-level graph a DAG by construction, and names the forbidden edges (the hub
//!   never imports `http`, the domain never imports `http`, `hub`, `ingest`, …).
//! - Only `config` and `main` name `clap`.
//! - Between files (every file is a module), the graph has no cycle either: the leaf
//!   helpers (`uri`; gzip lives in `http::static_files`, which imports no route) exist so that `http::routes`,
//!   `http::error` and `http::static_files` need not import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may import only from lower layers.
const LAYERS: &[&[&str]] = &[
    // Leaves: import nothing of the crate.
    &["model", "result_status", "keys", "time", "uri", "shutdown"],
    // Pure translators of outside formats and of the public API, over the model.
    &["api", "c123", "xml"],
    &["store"],
    &["merge"],
    // The merge loop's clients: inputs, the WebSocket hub, the scoreboard service and
    // replication (peers: they never import each other).
    &["ingest", "hub", "scoreboard", "replicate"],
    &["http"],
    // The daemon's settings as one plain value (over the components' own settings).
    &["settings"],
    // Composition, peers: `config` turns the command line into settings, `app` (the
    // composition root) wires the components from settings; `main` calls both.
    &["config", "app"],
];

/// Modules exempt from the rule while they are being moved out of the crate (none since the
/// load generator became `tools/loadgen`; kept so a future move can name one).
const EXEMPT: &[&str] = &[];

/// Files that may name `clap`: the command line only.
const CLAP_ALLOWED: &[&str] = &["config.rs", "config/tests.rs", "main.rs"];

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("read src/");
    for entry in entries {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file (`src/http/routes.rs` → `["http", "routes"]`,
/// `src/http/mod.rs` → `["http"]`); `lib.rs` and `main.rs` are the root (empty).
fn module_of(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src_dir()).expect("under src/");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().expect("file name");
    let stem = last.trim_end_matches(".rs");
    if !(stem == "mod" || (parts.is_empty() && (stem == "lib" || stem == "main"))) {
        parts.push(stem.to_owned());
    }
    parts
}

/// The text without comments (line and block) and without string literals, so that a doc
/// line or a message that names `crate::http` is no import.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = text[i + 2..].find("*/").map_or(b.len(), |e| i + 2 + e + 2);
            i = end;
        } else if let Some(hashes) = raw_string_start(text, i) {
            // r"…" / r#"…"#: ends at the quote followed by as many hashes.
            let body = i + 1 + hashes + 1;
            let close = format!("\"{}", "#".repeat(hashes));
            i = text[body..]
                .find(&close)
                .map_or(b.len(), |e| body + e + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal such as '"' or '\''; lifetimes (`'a`) are left alone.
            let close = text[i + 1..]
                .char_indices()
                .skip(1)
                .find(|(_, c)| *c == '\'')
                .map_or(b.len(), |(k, _)| i + 1 + k + 1);
            i = close;
        } else {
            let ch = text[i..].chars().next().expect("char");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// At `i` a raw string starts (`r"`, `r#"`, also after `b`): the number of hashes.
fn raw_string_start(text: &str, i: usize) -> Option<usize> {
    let b = text.as_bytes();
    let prev_ident = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
    let prev_ok = !prev_ident || (b[i - 1] == b'b' && (i < 2 || !b[i - 2].is_ascii_alphanumeric()));
    if b[i] != b'r' || !prev_ok {
        return None;
    }
    let hashes = b[i + 1..].iter().take_while(|c| **c == b'#').count();
    (b.get(i + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn ident_at(s: &str, i: usize) -> Option<(&str, usize)> {
    let len = s[i..]
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len() - i);
    (len > 0).then(|| (&s[i..i + len], i + len))
}

fn skip_ws(s: &str, mut i: usize) -> usize {
    while s[i..].starts_with(|c: char| c.is_whitespace()) {
        i += s[i..].chars().next().map_or(1, char::len_utf8);
    }
    i
}

/// Parses the path that continues at `i` (after a `crate`/`super` segment), pushing every
/// full path (`{a, b::c}` groups expanded) onto `out`. Returns where it stopped.
fn parse_tail(s: &str, mut i: usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) -> usize {
    let mut path = prefix;
    loop {
        let j = skip_ws(s, i);
        if !s[j..].starts_with("::") {
            out.push(path);
            return j;
        }
        i = skip_ws(s, j + 2);
        if s[i..].starts_with('{') {
            i += 1;
            loop {
                i = skip_ws(s, i);
                if s[i..].starts_with('}') {
                    return i + 1;
                }
                match ident_at(s, i) {
                    Some((seg, next)) => {
                        let mut p = path.clone();
                        p.push(seg.to_owned());
                        i = parse_tail(s, next, p, out);
                        i = skip_ws(s, i);
                        if s[i..].starts_with("as") {
                            i = ident_at(s, skip_ws(s, i + 2)).map_or(i + 2, |(_, n)| n);
                        }
                    }
                    None => i += s[i..].chars().next().map_or(1, char::len_utf8),
                }
                i = skip_ws(s, i);
                if s[i..].starts_with(',') {
                    i += 1;
                }
            }
        }
        match ident_at(s, i) {
            Some((seg, next)) => {
                path.push(seg.to_owned());
                i = next;
            }
            None => {
                out.push(path);
                return i;
            }
        }
    }
}

/// Every `crate::…` / `super::…` path of a file, as absolute module paths (not yet cut to a
/// module: the last segments may be items).
fn paths_of(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < code.len() {
        let Some(c) = code[i..].chars().next() else {
            break;
        };
        let prev_is_ident = code[..i]
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || p == '_' || p == ':');
        if prev_is_ident || !(code[i..].starts_with("crate") || code[i..].starts_with("super")) {
            i += c.len_utf8();
            continue;
        }
        let Some((first, mut next)) = ident_at(code, i) else {
            i += c.len_utf8();
            continue;
        };
        let base: Vec<String> = match first {
            "crate" => Vec::new(),
            "super" => {
                // In `a/b.rs` (module a::b) `super` is `a`; in `a/b/mod.rs` too.
                let mut base = module.to_vec();
                base.pop();
                // Further `super`s go up one level each.
                loop {
                    let j = skip_ws(code, next);
                    if code[j..].starts_with("::") {
                        let k = skip_ws(code, j + 2);
                        if let Some(("super", n)) = ident_at(code, k) {
                            base.pop();
                            next = n;
                            continue;
                        }
                    }
                    break;
                }
                base
            }
            _ => {
                i = next;
                continue;
            }
        };
        i = parse_tail(code, next, base, &mut out).max(next);
    }
    out
}

struct Crate {
    /// Module path of every file.
    modules: BTreeSet<Vec<String>>,
    /// File module → modules it imports (the longest module prefix of each path).
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
    /// File (relative to src/) → its code without comments and strings.
    code: BTreeMap<String, String>,
}

fn read_crate() -> Crate {
    let mut files = Vec::new();
    rust_files(&src_dir(), &mut files);
    files.sort();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(f)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    let mut code = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read source file");
        let only = code_only(&text);
        let module = module_of(file);
        for path in paths_of(&only, &module) {
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            // An import of the module itself or of one of its ancestors (a child naming its
            // parent's items) is no edge between distinct modules of interest.
            if target.is_empty() || module.starts_with(&target) {
                continue;
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
        let rel = file
            .strip_prefix(src_dir())
            .expect("under src/")
            .to_string_lossy()
            .into_owned();
        code.insert(rel, only);
    }
    Crate {
        modules,
        edges,
        code,
    }
}

fn layer_of(top: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&top))
}

fn show(m: &[String]) -> String {
    if m.is_empty() {
        "crate".to_owned()
    } else {
        m.join("::")
    }
}

#[test]
fn every_top_level_module_has_a_layer() {
    let c = read_crate();
    let tops: BTreeSet<&str> = c
        .modules
        .iter()
        .filter_map(|m| m.first().map(String::as_str))
        .collect();
    let missing: Vec<&str> = tops
        .into_iter()
        .filter(|t| layer_of(t).is_none() && !EXEMPT.contains(t))
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a layer in tests/it/layers.rs and ARCHITECTURE.md: {missing:?}"
    );
}

#[test]
fn modules_import_only_from_lower_layers() {
    let c = read_crate();
    let mut violations = Vec::new();
    for (from, targets) in &c.edges {
        let Some(from_top) = from.first() else {
            continue;
        };
        if EXEMPT.contains(&from_top.as_str()) {
            continue;
        }
        let Some(from_layer) = layer_of(from_top) else {
            continue;
        };
        for to in targets {
            let to_top = &to[0];
            if to_top == from_top || EXEMPT.contains(&to_top.as_str()) {
                continue;
            }
            let ok = layer_of(to_top).is_some_and(|l| l < from_layer);
            if !ok {
                violations.push(format!("{} -> {}", show(from), show(to)));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "imports against the layer rule (ARCHITECTURE.md, Layers):\n{}",
        violations.join("\n")
    );
}

#[test]
fn the_hub_and_the_domain_never_import_http_or_the_hub() {
    // Named separately from the layer rule: these are the edges issue 13 removed.
    let c = read_crate();
    let mut violations = Vec::new();
    for (file, code) in &c.code {
        let top = file.split(['/', '.']).next().unwrap_or_default();
        let forbidden: &[&str] = match top {
            "hub" | "scoreboard" => &["crate::http"],
            "model" | "api" | "c123" | "xml" | "store" | "merge" | "time" | "uri" => &[
                "crate::http",
                "crate::hub",
                "crate::ingest",
                "crate::app",
                "crate::settings",
                "crate::config",
            ],
            _ => &[],
        };
        for f in forbidden {
            if code.contains(f) {
                violations.push(format!("src/{file} uses {f}"));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn only_the_command_line_knows_clap() {
    let c = read_crate();
    let users: Vec<&String> = c
        .code
        .iter()
        .filter(|(file, code)| {
            !CLAP_ALLOWED.contains(&file.as_str())
                && (code.contains("clap::") || code.contains("use clap"))
        })
        .map(|(file, _)| file)
        .collect();
    assert!(users.is_empty(), "clap below the command line: {users:?}");
}

#[test]
fn no_import_cycle_between_files() {
    let c = read_crate();
    let exempt = |m: &Vec<String>| m.first().is_some_and(|t| EXEMPT.contains(&t.as_str()));
    // Depth-first search with colours; a grey target is a cycle.
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        White,
        Grey,
        Black,
    }
    let mut colour: BTreeMap<&Vec<String>, Colour> =
        c.modules.iter().map(|m| (m, Colour::White)).collect();
    let mut cycles = Vec::new();
    fn visit<'a>(
        m: &'a Vec<String>,
        c: &'a Crate,
        colour: &mut BTreeMap<&'a Vec<String>, Colour>,
        stack: &mut Vec<&'a Vec<String>>,
        cycles: &mut Vec<String>,
        exempt: &dyn Fn(&Vec<String>) -> bool,
    ) {
        colour.insert(m, Colour::Grey);
        stack.push(m);
        for t in c.edges.get(m).into_iter().flatten() {
            if exempt(t) {
                continue;
            }
            match colour.get(t).copied() {
                Some(Colour::White) => visit(t, c, colour, stack, cycles, exempt),
                Some(Colour::Grey) => {
                    let start = stack.iter().position(|s| *s == t).unwrap_or(0);
                    let ring: Vec<String> = stack[start..].iter().map(|s| show(s)).collect();
                    cycles.push(format!("{} -> {}", ring.join(" -> "), show(t)));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(m, Colour::Black);
    }
    for m in &c.modules {
        if !exempt(m) && colour.get(m).copied() == Some(Colour::White) {
            visit(m, &c, &mut colour, &mut Vec::new(), &mut cycles, &exempt);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_imports_in_all_their_forms() {
    // The rules above are only as good as the path reader: a fixed sample.
    let code = code_only(
        "use super::{error::{ApiError, ErrorCode}, wire as w};\n\
         use crate::merge::{self, Snapshot};\n\
         // use crate::daemon;\n\
         let s = \"crate::config\";\n\
         let x = crate::time::now_iso();\n\
         use super::super::keys;\n",
    );
    let module = vec!["http".to_owned(), "routes".to_owned()];
    let mut got: Vec<String> = paths_of(&code, &module)
        .iter()
        .map(|p| p.join("::"))
        .collect();
    got.sort();
    assert_eq!(
        got,
        [
            "http::error::ApiError",
            "http::error::ErrorCode",
            "http::wire",
            "keys",
            "merge::Snapshot",
            "merge::self",
            "time::now_iso",
        ]
    );
    // And on the real tree it finds the edges it should.
    let c = read_crate();
    let admin = ["http", "routes", "admin"].map(str::to_owned).to_vec();
    let routes = c
        .edges
        .get(&admin)
        .expect("http::routes::admin imports something");
    assert!(routes.contains(&vec!["http".to_owned(), "error".to_owned()]));
    // Since the axum move the handlers, not `http::routes` itself, name the merge loop.
    assert!(routes.contains(&vec!["merge".to_owned()]));
}

#[test]
fn only_app_and_main_wire_components() {
    // The composition root (ARCHITECTURE.md, "Layers" 4): starting the merge loop, the hub,
    // the HTTP server or an input, and connecting them, is `app`'s job (and `main`'s for
    // `import`). Unit-test files (`tests.rs`) start the piece they test.
    let c = read_crate();
    let starters = [
        "merge::start(",
        "Hub::start(",
        "http::serve(",
        "watch::spawn(",
        "tcp::spawn_connect(",
        "tcp::spawn_listen(",
    ];
    let mut violations = Vec::new();
    for (file, code) in &c.code {
        if file == "app.rs" || file == "main.rs" || file.ends_with("tests.rs") {
            continue;
        }
        for s in starters {
            if code.contains(s) {
                violations.push(format!("src/{file} calls {s}…)"));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "only app and main wire components:\n{}",
        violations.join("\n")
    );
}
