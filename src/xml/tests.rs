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
