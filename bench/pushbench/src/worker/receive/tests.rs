use super::*;

#[test]
fn repeats_and_reordered_seqs_are_told_apart() {
    let mut s = SeenSeqs::default();
    assert_eq!(s.first(1), Seen::InOrder);
    assert_eq!(s.first(3), Seen::InOrder);
    assert_eq!(s.first(3), Seen::Again);
    assert_eq!(s.first(1), Seen::Again);
    assert_eq!(s.first(2), Seen::Late);
    assert_eq!(s.first(2), Seen::Again);
    assert_eq!(s.first(4), Seen::InOrder);
    assert_eq!(s.first(3), Seen::Again);
}
