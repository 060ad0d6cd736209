//! What the test prints when it fails: pods, events, the PushCluster, the roles' logs and the
//! end of every node component's log.

use std::time::Duration;

use pushcluster_test_support::kubenode::Node;

use super::setup::{APPS, OPERATOR_NS};

/// On a panic, prints what the node was doing.
pub struct Diagnostics<'a> {
    pub node: &'a Node,
}

impl Drop for Diagnostics<'_> {
    fn drop(&mut self) {
        // To look around afterwards: the node stays up this long (pass or fail).
        let keep = std::env::var("PUSHCLUSTER_E2E_KEEP_NODE")
            .ok()
            .and_then(|s| s.parse().ok())
            .map(Duration::from_secs);
        if std::thread::panicking() {
            self.print();
        }
        if let Some(keep) = keep {
            eprintln!(
                "--- keeping the node for {keep:?}: KUBECONFIG={}",
                self.node.kubeconfig.display()
            );
            std::thread::sleep(keep);
        }
    }
}

impl Diagnostics<'_> {
    fn print(&self) {
        let k = self.node.kubectl();
        for args in [
            &["get", "pods", "-A", "-o", "wide"][..],
            &["get", "events", "-A", "--sort-by=.lastTimestamp"][..],
            &["get", "pushcluster", "-A", "-o", "yaml"][..],
        ] {
            eprintln!(
                "--- kubectl {}\n{}",
                args.join(" "),
                k.run(args).unwrap_or_else(|e| e.to_string())
            );
        }
        for (ns, sel) in [
            (OPERATOR_NS, "app.kubernetes.io/name"),
            (APPS, "app.kubernetes.io/name"),
            ("databases", "app"),
        ] {
            let logs = k.run(&["logs", "-n", ns, "-l", sel, "--tail=30", "--prefix"]);
            eprintln!(
                "--- logs in {ns}\n{}",
                logs.unwrap_or_else(|e| e.to_string())
            );
        }
        eprintln!(
            "--- node logs (run directory {})\n{}",
            self.node.dir().display(),
            self.node.log_tails(15)
        );
    }
}
