use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::*;

fn limits(max_connections: usize, max_per_user: u32) -> AdmissionLimits {
    AdmissionLimits {
        max_connections,
        max_per_user,
        rate_per_ip: 0.0,
        burst_per_ip: 1,
    }
}

#[test]
fn a_user_gets_at_most_its_share_and_a_closed_connection_frees_it() {
    let a = Admission::new(limits(0, 2));
    let s1 = a.admit("u").unwrap();
    let _s2 = a.admit("u").unwrap();
    assert_eq!(a.admit("u").err(), Some(Refused::UserFull { max: 2 }));
    let _other = a.admit("v").unwrap();
    drop(s1);
    let _s3 = a.admit("u").unwrap();
    assert_eq!(a.open(), 3);
}

#[test]
fn the_node_bound_counts_every_user() {
    let a = Admission::new(limits(2, 0));
    let _x = a.admit("x").unwrap();
    a.precheck(None).unwrap();
    let y = a.admit("y").unwrap();
    assert_eq!(a.precheck(None), Err(Refused::NodeFull { max: 2 }));
    assert_eq!(a.admit("z").err(), Some(Refused::NodeFull { max: 2 }));
    drop(y);
    let _z = a.admit("z").unwrap();
}

#[test]
fn dropping_every_slot_leaves_no_entry() {
    let a = Admission::new(limits(0, 16));
    let slots: Vec<Slot> = (0..100)
        .map(|i| a.admit(&format!("u{i}")).unwrap())
        .collect();
    drop(slots);
    assert_eq!(a.open(), 0);
    assert!(a.users.iter().all(|s| s.lock().unwrap().is_empty()));
}

#[test]
fn the_connect_rate_is_per_source_and_refills() {
    let r = rate::RateLimiter::new(1000.0, 3);
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    for _ in 0..3 {
        r.take(ip).unwrap();
    }
    let wait = r.take(ip).unwrap_err();
    assert!(wait <= Duration::from_millis(1), "{wait:?}");
    r.take(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    r.take(ip).unwrap();
}

#[test]
fn ipv6_sources_count_per_64() {
    let r = rate::RateLimiter::new(0.001, 1);
    let a: Ipv6Addr = "2001:db8:1:2::1".parse().unwrap();
    let b: Ipv6Addr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let c: Ipv6Addr = "2001:db8:1:3::1".parse().unwrap();
    r.take(IpAddr::V6(a)).unwrap();
    assert!(r.take(IpAddr::V6(b)).is_err(), "same /64");
    r.take(IpAddr::V6(c)).unwrap();
}

#[test]
fn the_table_stays_bounded_under_a_flood_of_sources() {
    let r = rate::RateLimiter::new(0.001, 1);
    for i in 0..(rate::MAX_TRACKED as u32 + 10_000) {
        let _ = r.take(IpAddr::V4(Ipv4Addr::from(i)));
    }
    assert!(r.tracked() <= rate::MAX_TRACKED, "{}", r.tracked());
}

#[test]
fn refusals_are_counted_by_reason() {
    let a = Admission::new(AdmissionLimits {
        max_connections: 0,
        max_per_user: 1,
        rate_per_ip: 0.001,
        burst_per_ip: 1,
    });
    let ip = Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    a.precheck(ip).unwrap();
    assert!(matches!(a.precheck(ip), Err(Refused::Rate { .. })));
    let _s = a.admit("u").unwrap();
    assert!(a.admit("u").is_err());
    let count = |reason| a.refused.get_or_create(&RefusedLabels { reason }).get();
    assert_eq!((count("connect_rate"), count("user_full")), (1, 1));
}
