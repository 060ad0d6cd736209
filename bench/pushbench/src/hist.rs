//! HDR histograms of microseconds: recording, shipping between processes as
//! `(value, count)` pairs, and the percentiles a result reports.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A histogram's recorded values as `[value, count]` pairs.
pub type Pairs = Vec<[u64; 2]>;

/// 1 µs … 10 min, 3 significant digits.
pub fn new() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

pub fn to_pairs(h: &Histogram<u64>) -> Pairs {
    h.iter_recorded()
        .map(|v| [v.value_iterated_to(), v.count_at_value()])
        .collect()
}

pub fn add_pairs(h: &mut Histogram<u64>, pairs: &Pairs) {
    for [value, count] in pairs {
        h.saturating_record_n(*value, *count);
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

pub fn summary(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let ms = |us: u64| us as f64 / 1000.0;
    Summary {
        count: h.len(),
        mean_ms: h.mean() / 1000.0,
        p50_ms: ms(h.value_at_quantile(0.5)),
        p90_ms: ms(h.value_at_quantile(0.9)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        p999_ms: ms(h.value_at_quantile(0.999)),
        max_ms: ms(h.max()),
    }
}
