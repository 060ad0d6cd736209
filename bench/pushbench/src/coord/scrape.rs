//! The server's own counters, from every pushd process's `/metrics`: MongoDB commands by name
//! (`pushd_mongo_commands_total`, newer pushd only) and time per pipeline stage
//! (`pushd_stage_seconds`); and, from FerretDB's `/debug/metrics`, the commands it received
//! (`ferretdb_client_requests_total`: every pushd version, driver heartbeats included).

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::Serialize;

use crate::wire::http::HttpClient;

/// Counter values summed over the scraped processes.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub mongo_commands: BTreeMap<String, f64>,
    /// The same by command and collection: `"insert msgs"`.
    pub mongo_by_collection: BTreeMap<String, f64>,
    /// Commands FerretDB received, by name.
    pub store_commands: BTreeMap<String, f64>,
    /// Stage → (sum of seconds, count).
    pub stages: BTreeMap<String, (f64, f64)>,
}

/// A stage's observations during a phase.
#[derive(Debug, Clone, Serialize)]
pub struct StageDelta {
    pub count: u64,
    pub mean_ms: f64,
    pub total_s: f64,
}

impl Scrape {
    pub async fn take(targets: &[(String, SocketAddr)], store: Option<SocketAddr>) -> Scrape {
        let mut s = Scrape::default();
        for (_, addr) in targets {
            let mut http = HttpClient::new(*addr, "");
            let Ok(resp) = http.request("GET", "/metrics", b"").await else {
                continue;
            };
            s.add(&String::from_utf8_lossy(resp.body));
        }
        if let Some(addr) = store
            && let Ok(body) = get_http10(addr, "/debug/metrics").await
        {
            s.add(&body);
        }
        s
    }

    fn add(&mut self, text: &str) {
        for line in text.lines() {
            let Some((name, labels, value)) = sample(line) else {
                continue;
            };
            match name {
                "pushd_mongo_commands_total" => {
                    if let Some(cmd) = label(labels, "command") {
                        *self.mongo_commands.entry(cmd.to_owned()).or_default() += value;
                        let collection = label(labels, "collection").unwrap_or("");
                        let key = format!("{cmd} {collection}").trim_end().to_owned();
                        *self.mongo_by_collection.entry(key).or_default() += value;
                    }
                }
                "ferretdb_client_requests_total" => {
                    if let Some(cmd) = label(labels, "command") {
                        *self.store_commands.entry(cmd.to_owned()).or_default() += value;
                    }
                }
                "pushd_stage_seconds_sum" | "pushd_stage_seconds_count" => {
                    if let Some(stage) = label(labels, "stage") {
                        let e = self.stages.entry(stage.to_owned()).or_default();
                        if name.ends_with("_sum") {
                            e.0 += value;
                        } else {
                            e.1 += value;
                        }
                    }
                }
                _ => {}
            }
        }
    }

    /// Commands pushd sent since `before`, by name (only those that moved).
    pub fn commands_since(&self, before: &Scrape) -> BTreeMap<String, u64> {
        deltas(&self.mongo_commands, &before.mongo_commands)
    }

    /// Commands pushd sent since `before`, by name and collection (`"insert msgs"`).
    pub fn commands_by_collection_since(&self, before: &Scrape) -> BTreeMap<String, u64> {
        deltas(&self.mongo_by_collection, &before.mongo_by_collection)
    }

    /// Commands FerretDB received since `before`, by name (only those that moved).
    pub fn store_commands_since(&self, before: &Scrape) -> BTreeMap<String, u64> {
        deltas(&self.store_commands, &before.store_commands)
    }

    /// Stage observations since `before` (only stages that moved).
    pub fn stages_since(&self, before: &Scrape) -> BTreeMap<String, StageDelta> {
        self.stages
            .iter()
            .filter_map(|(k, (sum, count))| {
                let (s0, c0) = before.stages.get(k).copied().unwrap_or((0.0, 0.0));
                let (sum, count) = (sum - s0, count - c0);
                (count >= 1.0).then(|| {
                    let delta = StageDelta {
                        count: count.round() as u64,
                        mean_ms: sum * 1000.0 / count,
                        total_s: sum,
                    };
                    (k.clone(), delta)
                })
            })
            .collect()
    }
}

/// `GET path` as HTTP/1.0, body read to the end: FerretDB's (Go's) server answers large
/// bodies chunked to HTTP/1.1 requests, which [`HttpClient`] does not decode.
async fn get_http10(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.take(MAX_SCRAPE).read_to_end(&mut response).await?;
    let text = String::from_utf8_lossy(&response);
    Ok(text
        .split_once("\r\n\r\n")
        .map_or("", |(_, body)| body)
        .to_owned())
}

/// Largest metrics page read.
const MAX_SCRAPE: u64 = 16 << 20;

fn deltas(now: &BTreeMap<String, f64>, before: &BTreeMap<String, f64>) -> BTreeMap<String, u64> {
    now.iter()
        .map(|(k, v)| {
            let d = v - before.get(k).copied().unwrap_or(0.0);
            (k.clone(), d.max(0.0).round() as u64)
        })
        .filter(|(_, d)| *d > 0)
        .collect()
}

/// `name{labels} value` → its parts (labels without the braces, empty when absent).
fn sample(line: &str) -> Option<(&str, &str, f64)> {
    if line.starts_with('#') {
        return None;
    }
    let (series, value) = line.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    match series.split_once('{') {
        Some((name, labels)) => Some((name, labels.strip_suffix('}')?, value)),
        None => Some((series, "", value)),
    }
}

/// The value of label `key` in `a="x",b="y"`.
fn label<'a>(labels: &'a str, key: &str) -> Option<&'a str> {
    labels.split(',').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k.trim() == key).then(|| v.trim_matches('"'))
    })
}

#[cfg(test)]
mod tests;
