//! The Grafana dashboard is valid JSON and queries only metrics the service exports.
use std::collections::BTreeSet;
use std::path::Path;

use giftcodes::metrics::METRIC_NAMES;
use serde_json::Value;

/// Every `expr` in the dashboard.
fn expressions(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                match (key.as_str(), child) {
                    ("expr", Value::String(expr)) => found.push(expr.clone()),
                    _ => expressions(child, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| expressions(item, found)),
        _ => {}
    }
}

/// The metric names an expression mentions, histogram suffixes taken off.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(start) = rest.find("giftcodes_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        let name = &tail[..end];
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|base| METRIC_NAMES.iter().any(|(known, _)| known == base))
            .unwrap_or(name);
        names.push(base.to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn the_grafana_dashboard_uses_only_exported_metric_names() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/giftcodes.json");
    let text = std::fs::read_to_string(&path).expect("deploy/grafana/giftcodes.json exists");
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let mut exprs = Vec::new();
    expressions(&dashboard, &mut exprs);
    assert!(exprs.len() >= 10, "the dashboard has its queries");
    let exported: BTreeSet<&str> = METRIC_NAMES.iter().map(|(name, _)| *name).collect();
    let mut used = BTreeSet::new();
    for expr in &exprs {
        for name in metric_names(expr) {
            assert!(
                exported.contains(name.as_str()),
                "the dashboard queries {name}, which the service does not export: {expr}"
            );
            used.insert(name);
        }
    }
    let unused: Vec<&&str> = exported
        .iter()
        .filter(|name| !used.contains(**name))
        .collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}
