use super::*;

#[test]
fn every_rule_compiles() {
    assert!(rules::OOPSES.len() > 20);
    assert!(!frames::FRAME_RES.is_empty());
}

#[test]
fn no_crash_in_plain_output() {
    assert_eq!(title(b""), None);
    assert_eq!(title(b"[    0.000000] Linux version 6.1\n[    1.0] ok\n"), None);
}
