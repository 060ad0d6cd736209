use super::*;

#[test]
fn sums_commands_and_stages() {
    let mut s = Scrape::default();
    s.add(
        "# TYPE x counter\n\
         pushd_mongo_commands_total{command=\"insert\"} 3\n\
         pushd_stage_seconds_sum{stage=\"store\"} 0.5\n\
         pushd_stage_seconds_count{stage=\"store\"} 2\n\
         pushd_stage_seconds_bucket{stage=\"store\",le=\"0.1\"} 1\n",
    );
    s.add("pushd_mongo_commands_total{command=\"insert\"} 4\n");
    s.add("pushd_mongo_commands_total{command=\"insert\",collection=\"msgs\"} 2\n");
    assert_eq!(s.mongo_commands["insert"], 9.0);
    assert_eq!(s.mongo_by_collection["insert"], 7.0);
    assert_eq!(s.mongo_by_collection["insert msgs"], 2.0);
    assert_eq!(s.stages["store"], (0.5, 2.0));
    let before = Scrape::default();
    assert_eq!(s.commands_since(&before)["insert"], 9);
    assert_eq!(s.commands_by_collection_since(&before)["insert msgs"], 2);
    let st = &s.stages_since(&before)["store"];
    assert_eq!((st.count, st.mean_ms), (2, 250.0));
}

#[test]
fn counts_ferretdb_requests_by_command() {
    let mut before = Scrape::default();
    before.add("ferretdb_client_requests_total{command=\"insert\",opcode=\"OP_MSG\"} 2\n");
    let mut s = Scrape::default();
    s.add(
        "ferretdb_client_requests_total{command=\"insert\",opcode=\"OP_MSG\"} 5\n\
         ferretdb_client_requests_total{command=\"hello\",opcode=\"OP_MSG\"} 1\n",
    );
    let d = s.store_commands_since(&before);
    assert_eq!((d["insert"], d["hello"]), (3, 1));
    assert!(s.commands_since(&before).is_empty());
}
