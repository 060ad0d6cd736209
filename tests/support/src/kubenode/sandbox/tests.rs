use super::*;

#[test]
fn networks_overlap_by_the_shorter_prefix() {
    let n = |s: &str| u32::from(s.parse::<Ipv4Addr>().unwrap());
    assert!(overlaps((n("100.127.0.4"), 30), (n("100.127.0.6"), 32)));
    assert!(overlaps((n("100.127.0.4"), 30), (n("100.64.0.0"), 10)));
    assert!(!overlaps((n("100.127.0.4"), 30), (n("100.127.0.8"), 30)));
    assert!(!overlaps((n("100.127.0.4"), 30), (n("192.0.2.0"), 24)));
}
