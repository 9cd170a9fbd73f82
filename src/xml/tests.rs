use super::*;

fn fixture() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/jarni-2024.xml"
    ))
    .expect("fixture present")
}

#[test]
fn fixture_parses() {
    let e = parse_export(&fixture()).unwrap();
    let c = e.counts();
    assert_eq!(c.participants, 366);
    assert_eq!(c.classes, 15);
    assert_eq!(c.races, 44);
    assert_eq!(c.courses, 4);
    assert_eq!(c.results, 1422);
    assert_eq!(e.event.event_id, "CZE2.2024040600");
    assert_eq!(e.event.meta.main_title, "Jarní slalomy 2024");
}

/// The fixture with one text replaced (the first occurrence, which must exist).
fn fixture_with(from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(fixture()).unwrap();
    assert!(text.contains(from), "{from} not in the fixture");
    text.replacen(from, to, 1).into_bytes()
}

fn bad_row_message(bytes: &[u8]) -> String {
    match parse_export(bytes) {
        Err(e @ XmlError::BadRow { .. }) => e.to_string(),
        other => panic!("expected a BadRow error, got {other:?}"),
    }
}

#[test]
fn negative_times_penalties_and_ranks_are_refused_naming_the_element() {
    let msg = bad_row_message(&fixture_with("<Time>76990</Time>", "<Time>-76990</Time>"));
    assert!(
        msg.contains("Time '-76990'") && msg.contains("non-negative"),
        "{msg}"
    );
    let msg = bad_row_message(&fixture_with("<Pen>306</Pen>", "<Pen>-306</Pen>"));
    assert!(msg.contains("Pen '-306'"), "{msg}");
    let msg = bad_row_message(&fixture_with("<Rnk>1</Rnk>", "<Rnk>-1</Rnk>"));
    assert!(msg.contains("Rnk '-1'"), "{msg}");
}

#[test]
fn absurd_times_are_refused_at_the_parser() {
    let msg = bad_row_message(&fixture_with(
        "<Time>76990</Time>",
        "<Time>9223372036854775807</Time>",
    ));
    assert!(msg.contains("Time") && msg.contains("86400000"), "{msg}");
    // The bound itself (24 h) is accepted, one more is not.
    let at = crate::model::MAX_TIME_MS;
    let e = parse_export(&fixture_with(
        "<Time>76990</Time>",
        &format!("<Time>{at}</Time>"),
    ))
    .unwrap();
    assert!(e.results.iter().any(|r| r.time_ms == Some(at)));
    bad_row_message(&fixture_with(
        "<Time>76990</Time>",
        &format!("<Time>{}</Time>", at + 1),
    ));
}

#[test]
fn more_gate_slots_than_any_course_are_refused() {
    let slots = crate::model::Gates::MAX_SLOTS;
    let bad = format!("<Gates>{}</Gates>", "  0".repeat(10_000));
    let msg = bad_row_message(&fixture_with("<Gates>  2  2  2  0  0300</Gates>", &bad));
    assert!(msg.contains("Gates") && msg.contains("64"), "{msg}");
    let ok = format!("<Gates>{}</Gates>", "  0".repeat(slots));
    assert!(parse_export(&fixture_with("<Gates>  2  2  2  0  0300</Gates>", &ok)).is_ok());
    // The real export's 3-digit value stays as it is.
    let e = parse_export(&fixture()).unwrap();
    assert!(e
        .results
        .iter()
        .any(|r| r.gates.0 == vec![Some(2), Some(2), Some(2), Some(0), Some(0), Some(300)]));
}
