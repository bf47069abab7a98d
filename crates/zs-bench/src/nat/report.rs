//! The results table and the ratios of zserver against rathole and direct.

use super::{IdleResult, Route, RouteResult, total};

pub fn describe_rss(rss: &[(String, u64)]) -> String {
    let parts: Vec<String> = rss
        .iter()
        .map(|(name, kib)| format!("{name} {kib}"))
        .collect();
    format!("{} (total {})", parts.join(" + "), total(rss))
}

/// One row of the tables: a name and how to read it from a result.
pub struct Metric {
    name: String,
    value: fn(&RouteResult) -> Option<f64>,
    decimals: usize,
}

pub fn metric(
    name: impl Into<String>,
    decimals: usize,
    value: fn(&RouteResult) -> Option<f64>,
) -> Metric {
    Metric {
        name: name.into(),
        value,
        decimals,
    }
}

pub fn print_tables(idle: usize, results: &[(Route, RouteResult)]) {
    let metrics = [
        metric("bulk throughput, Gbit/s", 2, |r| {
            r.bulk_bits_per_second.map(|bits| bits / 1e9)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.bulk_cpu),
        metric("HTTP keep-alive, req/s", 0, |r| {
            r.keep_alive.as_ref().map(|h| h.requests_per_second)
        }),
        metric("  p99 latency, ms", 2, |r| {
            r.keep_alive.as_ref().map(|h| h.p99_ms)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.keep_alive_cpu),
        metric("HTTP no keep-alive, req/s", 0, |r| {
            r.close.as_ref().map(|h| h.requests_per_second)
        }),
        metric("  p99 latency, ms", 2, |r| {
            r.close.as_ref().map(|h| h.p99_ms)
        }),
        metric("  forwarders' CPU, % of a core", 0, |r| r.close_cpu),
        metric("RSS idle, no connections, MiB", 1, |r| {
            r.idle.as_ref().map(|i| total(&i.baseline) as f64 / 1024.0)
        }),
        metric(format!("RSS with {idle} idle connections, MiB"), 1, |r| {
            r.idle.as_ref().map(|i| total(&i.loaded) as f64 / 1024.0)
        }),
        metric("RSS per idle connection, KiB", 2, |r| {
            r.idle.as_ref().map(IdleResult::per_connection_kib)
        }),
    ];
    let format_value = |value: Option<f64>, decimals: usize| {
        value.map_or_else(|| "–".to_owned(), |value| format!("{value:.decimals$}"))
    };

    println!();
    println!("Results (RSS: server + agent / rathole server + client, VmRSS):");
    println!();
    let header: Vec<String> = results.iter().map(|(route, _)| route.label()).collect();
    println!("| metric | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    // Only the rows some route measured.
    let metrics: Vec<Metric> = metrics
        .into_iter()
        .filter(|metric| {
            results
                .iter()
                .any(|(_, result)| (metric.value)(result).is_some())
        })
        .collect();
    for metric in &metrics {
        let cells: Vec<String> = results
            .iter()
            .map(|(_, result)| format_value((metric.value)(result), metric.decimals))
            .collect();
        println!("| {} | {} |", metric.name, cells.join(" | "));
    }

    // Ratios: every zserver route against every rathole route and against direct.
    let direct = results.iter().find(|(route, _)| *route == Route::Direct);
    let mut pairs = Vec::new();
    for (zs_route, zs_result) in results.iter().filter(|(r, _)| matches!(r, Route::Zs(_))) {
        for (other_route, other_result) in results
            .iter()
            .filter(|(r, _)| matches!(r, Route::Rathole(_)))
        {
            let note = if zs_route.encrypted() == other_route.encrypted() {
                if zs_route.encrypted() {
                    " (both encrypted)"
                } else {
                    " (both unencrypted)"
                }
            } else {
                ""
            };
            pairs.push((
                format!("{} / {}{note}", zs_route.label(), other_route.label()),
                zs_result,
                other_result,
            ));
        }
        if let Some((_, direct_result)) = direct {
            pairs.push((
                format!("{} / direct", zs_route.label()),
                zs_result,
                direct_result,
            ));
        }
    }
    if pairs.is_empty() {
        return;
    }
    println!();
    println!(
        "Ratios (req/s and Gbit/s: higher is better for zserver; latency, CPU, RSS: lower is better):"
    );
    println!();
    let names: Vec<&str> = pairs.iter().map(|(name, _, _)| name.as_str()).collect();
    println!("| metric | {} |", names.join(" | "));
    println!("|---|{}", "---:|".repeat(names.len()));
    for metric in &metrics {
        let cells: Vec<String> = pairs
            .iter()
            .map(|(_, zs_result, other)| {
                let ratio = match ((metric.value)(zs_result), (metric.value)(other)) {
                    (Some(zs), Some(other)) if other > 0.0 => Some(zs / other),
                    _ => None,
                };
                format_value(ratio, 2)
            })
            .collect();
        println!("| {} | {} |", metric.name.trim(), cells.join(" | "));
    }
}
