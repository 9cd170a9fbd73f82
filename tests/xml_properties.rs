//! Property tests: the export parser never panics, whatever the bytes, and a damaged real
//! export is either rejected with an error or parsed into a consistent export.

use proptest::prelude::*;

use c123_live::xml::parse_export;

fn fixture() -> &'static [u8] {
    static XML: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    XML.get_or_init(|| {
        std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fixtures/jarni-2024.xml"
        ))
        .unwrap()
    })
}

/// The first 60 KB of the real export: real rows, cheap to parse many times.
fn prefix() -> Vec<u8> {
    let x = fixture();
    let cut = x.len().min(60_000);
    let mut v = x[..cut].to_vec();
    // Close the document after the last complete row so the unmodified prefix is valid.
    let text = String::from_utf8_lossy(&v).into_owned();
    let end = text
        .rfind("</Participants>")
        .map(|i| i + "</Participants>".len())
        .unwrap_or(0);
    v.truncate(end);
    v.extend_from_slice(b"\n</Canoe123Data>");
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = parse_export(&bytes);
    }

    #[test]
    fn arbitrary_text_in_the_root_never_panics(body in ".{0,2000}") {
        let doc = format!("<Canoe123Data xmlns=\"http://siwidata.com/Canoe123/Data.xsd\">{body}</Canoe123Data>");
        let _ = parse_export(doc.as_bytes());
    }

    #[test]
    fn damaged_real_export_is_rejected_or_consistent(
        edits in proptest::collection::vec((0usize..60_000, any::<u8>()), 1..8),
        cut in proptest::option::of(0usize..60_000),
    ) {
        let mut doc = prefix();
        for (pos, byte) in edits {
            if !doc.is_empty() {
                let i = pos % doc.len();
                doc[i] = byte;
            }
        }
        if let Some(c) = cut {
            doc.truncate(c.min(doc.len()));
        }
        match parse_export(&doc) {
            Err(e) => prop_assert!(!e.to_string().is_empty()),
            Ok(export) => {
                // Whatever parsed is complete by the parser's own rules.
                prop_assert!(!export.participants.is_empty() && !export.races.is_empty());
                let mut ids: Vec<_> = export.participants.iter().map(|p| &p.id).collect();
                ids.sort();
                ids.dedup();
                prop_assert_eq!(ids.len(), export.participants.len());
            }
        }
    }
}

#[test]
fn the_prefix_itself_is_incomplete_but_well_formed() {
    // It has participants but no classes or schedule: a clear "incomplete" error, not a
    // parse error, which shows the property test starts from well-formed input.
    let err = parse_export(&prefix()).unwrap_err().to_string();
    assert!(err.contains("incomplete"), "{err}");
}

#[test]
fn deep_nesting_and_huge_text_are_rejected_or_bounded() {
    let deep = format!(
        "<Canoe123Data>{}{}</Canoe123Data>",
        "<a>".repeat(10_000),
        "</a>".repeat(10_000)
    );
    let err = parse_export(deep.as_bytes()).unwrap_err().to_string();
    assert!(err.contains("nested too deeply"), "{err}");

    let huge = format!(
        "<Canoe123Data><Participants><Id>{}</Id></Participants></Canoe123Data>",
        "x".repeat(8 * 1024 * 1024)
    );
    assert!(parse_export(huge.as_bytes()).is_err());

    let too_big = vec![b' '; c123_live::xml::MAX_EXPORT_BYTES + 1];
    let err = parse_export(&too_big).unwrap_err().to_string();
    assert!(err.contains("over the limit"), "{err}");
}
