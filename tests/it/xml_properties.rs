//! Property tests: the export parser never panics, whatever the bytes, and a damaged complete
//! real export is either rejected with an error or parsed into a consistent export.

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
}

/// A small but complete export cut from the real one: every top-level table, with the
/// participants and results of one class (FR_HO), ~10% of the file. Unlike the 60 KB prefix
/// it parses, so damaged copies of it reach the parser's "complete" branch.
fn small_complete_export() -> Vec<u8> {
    let text = std::str::from_utf8(fixture()).expect("the fixture is UTF-8");
    let body_start = text.find("\n  <").expect("top-level elements");
    let body_end = text.rfind("</Canoe123Data>").expect("root end");
    let mut out = text[..body_start].to_owned();
    let mut rest = &text[body_start..body_end];
    // Top-level elements are indented by two spaces and close on a line of their own.
    while let Some(open) = rest.find("\n  <") {
        let name_start = open + 4;
        let name_end = name_start + rest[name_start..].find(['>', ' ']).expect("element name");
        let name = &rest[name_start..name_end];
        let close = format!("</{name}>");
        let end = rest[name_end..].find(&close).expect("element end") + name_end + close.len();
        let element = &rest[open..end];
        let keep = match name {
            "Participants" => element.contains("<ClassId>FR_HO</ClassId>"),
            "Results" | "GateStatistics" => element.contains("<RaceId>FR_HO_"),
            _ => true,
        };
        if keep {
            out.push_str(element);
        }
        rest = &rest[end..];
    }
    out.push_str("\n</Canoe123Data>\n");
    out.into_bytes()
}

#[test]
fn the_small_export_is_complete_and_parses() {
    let seed = small_complete_export();
    let export = parse_export(&seed).expect("the seed is a complete export");
    assert!(seed.len() < fixture().len() / 5, "{} bytes", seed.len());
    // FR_HO: the fixture's 8 forerunners (the 8 rows of its Results frames).
    assert_eq!(export.participants.len(), 8);
    assert!(export
        .results
        .iter()
        .all(|r| r.race_id.starts_with("FR_HO_")));
    assert!(!export.results.is_empty() && !export.races.is_empty());
}

/// A damaged copy of a complete real export is either refused with an error or parsed into a
/// consistent export; both outcomes must occur, so the "consistent" half is really checked.
#[test]
fn damaged_real_export_is_rejected_or_consistent() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let seed = small_complete_export();
    let clean = parse_export(&seed).expect("seed parses");
    // `<unassigned>` schedule rows are not races, but an edit of that text makes one.
    let schedule_rows = String::from_utf8_lossy(&seed).matches("<Schedule>").count();
    // Any byte, but mostly digits and letters: those keep the document well-formed often
    // often enough that the "parsed" branch is reached (21 of 256 cases when written).
    let byte = prop_oneof![1 => any::<u8>(), 3 => b'0'..=b'9', 3 => b'a'..=b'z'];
    let edits = proptest::collection::vec((0..seed.len(), byte), 1..8);
    let cut = proptest::option::weighted(0.1, 0..seed.len());
    let mut runner = TestRunner::deterministic();
    let (mut refused, mut parsed) = (0, 0);
    for case in 0..256 {
        let edits = edits.new_tree(&mut runner).expect("edits").current();
        let cut = cut.new_tree(&mut runner).expect("cut").current();
        let mut doc = seed.clone();
        for &(pos, byte) in &edits {
            doc[pos] = byte;
        }
        if let Some(c) = cut {
            doc.truncate(c);
        }
        match parse_export(&doc) {
            Err(e) => {
                refused += 1;
                assert!(!e.to_string().is_empty(), "case {case}: an empty error");
            }
            Ok(export) => {
                parsed += 1;
                // Complete by the parser's own rules, never more than the seed held, ids
                // unique, and the same bytes always give the same export.
                assert!(!export.participants.is_empty() && !export.races.is_empty());
                assert!(export.participants.len() <= clean.participants.len());
                assert!(export.results.len() <= clean.results.len());
                assert!(export.races.len() <= schedule_rows);
                let mut ids: Vec<_> = export.participants.iter().map(|p| &p.id).collect();
                ids.sort();
                ids.dedup();
                assert_eq!(
                    ids.len(),
                    export.participants.len(),
                    "case {case}: {edits:?}"
                );
                assert_eq!(parse_export(&doc).ok(), Some(export), "case {case}");
            }
        }
    }
    println!("256 damaged exports: {refused} refused, {parsed} parsed consistently");
    assert!(
        refused > 0 && parsed > 0,
        "{refused} refused, {parsed} parsed"
    );
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
