//! Measurements 7 and 8, written as binaries of their own (`rebuild`, `sse`) next to
//! this one: run as subprocesses when they exist, their JSON lines
//! (`{"measure": "rebuild", …}`) folded into the table.

use super::table::{num, Met, Row};
use super::Ctx;
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::time::Duration;
use tokio::process::Command;

/// The sibling binaries `all` runs.
pub const SIBLINGS: &[&str] = &["rebuild", "sse"];

/// Measurement 7: `shiplog projections rebuild` throughput, from the `rebuild` binary.
pub async fn rebuild(ctx: &Ctx) -> Vec<Row> {
    const WHAT: &str = "shiplog projections rebuild, events/s";
    const TARGET: &str = ">= 100 000 events/s";
    let lines = match run(ctx, "rebuild").await {
        Ok(lines) => lines,
        Err(why) => return vec![Row::not_measured("7", WHAT, TARGET, &why)],
    };
    let mut rows = Vec::new();
    for line in lines.iter().filter(|l| l["measure"] == "rebuild") {
        let rate = line["events_per_s"].as_f64();
        rows.push(Row {
            id: "7".into(),
            what: format!(
                "{WHAT} ({})",
                context_fields(line, &["measure", "events_per_s"])
            ),
            value: rate.map_or_else(|| "-".to_owned(), |r| format!("{} events/s", num(r))),
            baseline: "-".into(),
            ratio: "-".into(),
            target: TARGET.into(),
            met: rate.map_or_else(
                || Met::NotMeasured("no events_per_s in its output".into()),
                |r| Met::from(r >= 100_000.0),
            ),
        });
    }
    if rows.is_empty() {
        rows.push(Row::not_measured(
            "7",
            WHAT,
            TARGET,
            "no rebuild line in its output",
        ));
    }
    rows
}

/// Measurement 8: SSE fan-out, from the `sse` binary: one row per criterion of
/// the target, judged from the lines it prints (`sse` per subscriber count,
/// `sse_write` per count the write path was measured at, `sse_churn` per round of
/// 1,000 subscribers coming and going).
pub async fn sse(ctx: &Ctx) -> Vec<Row> {
    const WHAT: &str = "SSE fan-out";
    let lines = match run(ctx, "sse").await {
        Ok(lines) => lines,
        Err(why) => return vec![Row::not_measured("8", WHAT, "target 8", &why)],
    };
    let of = |measure: &str| -> Vec<&Value> {
        lines.iter().filter(|l| l["measure"] == measure).collect()
    };
    let f = |line: &Value, field: &str| line[field].as_f64();
    let n = |line: &Value| line["subscribers"].as_u64().unwrap_or(0);
    let mut rows = Vec::new();
    let streams = of("sse");
    let idle = streams.iter().find(|l| n(l) == 0).copied();
    for line in streams.iter().filter(|l| n(l) > 0) {
        let count = n(line);
        let complete = line["subscribers_complete"].as_u64();
        let per = f(line, "rss_per_subscriber_kb");
        let p99 = f(line, "delivery_p99_ms");
        rows.push(Row {
            id: "8".into(),
            what: format!(
                "SSE, {count} subscribers: server memory per subscriber; every event delivered"
            ),
            value: format!(
                "{} KB; {}/{count} got all {} events",
                per.map_or_else(|| "-".into(), num),
                complete.map_or_else(|| "-".into(), |c| c.to_string()),
                line["events"].as_u64().unwrap_or(0)
            ),
            baseline: "-".into(),
            ratio: "-".into(),
            target: "<= 64 KB; all delivered".into(),
            met: Met::from(per.is_some_and(|p| p <= 64.0) && complete == Some(count)),
        });
        let connect = f(line, "connect_cpu_s").map(|s| s * 1000.0 / count as f64);
        let connect_ok = connect.is_some_and(|c| c < 0.5);
        // Delivery latency is judged at 1,000 subscribers, as the target states.
        let judged = count == 1000;
        rows.push(Row {
            id: "8".into(),
            what: format!("SSE, {count} subscribers: delivery p50 / p99 (recordedAt -> read); CPU to connect, per 1,000"),
            value: format!(
                "{} / {} ms; {} s",
                f(line, "delivery_p50_ms").map_or_else(|| "-".into(), num),
                p99.map_or_else(|| "-".into(), num),
                connect.map_or_else(|| "-".into(), num)
            ),
            baseline: "-".into(),
            ratio: "-".into(),
            target: if judged {
                "p99 < 50 ms; connect < 0.5 s".into()
            } else {
                "connect < 0.5 s".into()
            },
            met: Met::from(connect_ok && (!judged || p99.is_some_and(|p| p < 50.0))),
        });
    }
    let writes = of("sse_write");
    let quiet = writes.iter().find(|l| n(l) == 0).copied();
    for line in writes.iter().filter(|l| n(l) > 0) {
        let base = quiet.and_then(|q| f(q, "post_p99_ms"));
        let p99 = f(line, "post_p99_ms");
        let ratio = match (p99, base) {
            (Some(p), Some(b)) if b > 0.0 => Some(p / b),
            _ => None,
        };
        let unavailable = line["status_503"].as_u64().unwrap_or(0);
        rows.push(Row {
            id: "8".into(),
            what: format!(
                "SSE, {} subscribers: write path (POST deployments) p99; answers 503",
                n(line)
            ),
            value: format!(
                "{} ms; {unavailable} x 503",
                p99.map_or_else(|| "-".into(), num)
            ),
            baseline: format!("{} ms with none", base.map_or_else(|| "-".into(), num)),
            ratio: ratio.map_or_else(|| "-".into(), |r| format!("{r:.2}x")),
            target: "<= 2x; no 503".into(),
            met: Met::from(ratio.is_some_and(|r| r <= 2.0) && unavailable == 0),
        });
    }
    let before = idle.and_then(|l| f(l, "rss_before_kb"));
    for line in of("sse_churn") {
        let (with, after) = (f(line, "rss_with_kb"), f(line, "rss_after_kb"));
        // Returned: what stays after they left is at most 10 KB per departed subscriber.
        let kept = match (after, before) {
            (Some(a), Some(b)) => Some((a - b).max(0.0)),
            _ => None,
        };
        rows.push(Row {
            id: "8".into(),
            what: format!(
                "SSE, round {} of 1,000 subscribers leaving: server memory with them, after",
                line["round"].as_u64().unwrap_or(0)
            ),
            value: format!(
                "{} MB, {} MB",
                with.map_or_else(|| "-".into(), |k| num(k / 1024.0)),
                after.map_or_else(|| "-".into(), |k| num(k / 1024.0))
            ),
            baseline: format!(
                "{} MB before any subscriber",
                before.map_or_else(|| "-".into(), |k| num(k / 1024.0))
            ),
            ratio: "-".into(),
            target: "returned (<= 10 MB kept)".into(),
            met: Met::from(kept.is_some_and(|k| k <= 10.0 * 1024.0)),
        });
    }
    if rows.is_empty() {
        return vec![Row::not_measured(
            "8",
            WHAT,
            "target 8",
            "no sse line in its output",
        )];
    }
    rows
}

/// A JSON value as a cell: strings bare, numbers through `num`.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), num),
        other => other.to_string(),
    }
}

/// `key=value` for every field but `skip`, in the order printed.
fn context_fields(line: &Value, skip: &[&str]) -> String {
    let empty = Map::new();
    line.as_object()
        .unwrap_or(&empty)
        .iter()
        .filter(|(k, _)| !skip.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", show(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the sibling binary `name` and returns its JSON lines; the error is the
/// table's "not measured" reason.
async fn run(ctx: &Ctx, name: &str) -> Result<Vec<Value>, String> {
    let binary = ctx.bin_dir.join(name);
    if !binary.is_file() {
        return Err("binary missing".to_owned());
    }
    if ctx.unbuilt.iter().any(|n| n == name) {
        return Err("binary did not build".to_owned());
    }
    eprintln!("== {name}: {}", binary.display());
    match run_binary(ctx, name).await {
        Ok(lines) => Ok(lines),
        Err(e) => {
            let why = format!("{e:#}");
            ctx.note(format!("{name}: {why}"));
            Err("failed, see notes".to_owned())
        }
    }
}

async fn run_binary(ctx: &Ctx, name: &str) -> anyhow::Result<Vec<Value>> {
    let binary = ctx.bin_dir.join(name);
    // Only options the binary says it has: it is written by someone else.
    let help = Command::new(&binary).arg("--help").output().await?;
    let help = String::from_utf8_lossy(&help.stdout).into_owned();
    let mut command = Command::new(&binary);
    if ctx.plan.quick && help.contains("--quick") {
        command.arg("--quick");
    }
    if help.contains("--server") {
        command.arg("--server").arg(&ctx.pg);
    }
    if help.contains("--shiplog") {
        command.arg("--shiplog").arg(&ctx.shiplog);
    }
    let log = ctx.scratch.join(format!("{name}.stderr.log"));
    let stderr = std::fs::File::create(&log)?;
    command
        .stdin(std::process::Stdio::null())
        .stderr(stderr)
        .kill_on_drop(true);
    let limit = Duration::from_secs(if ctx.plan.quick { 600 } else { 3600 });
    let output = tokio::time::timeout(limit, command.output())
        .await
        .with_context(|| format!("{name} did not finish within {limit:?}"))?
        .with_context(|| format!("running {name}"))?;
    if !output.status.success() {
        bail!(
            "{name} exited {} (stderr in {})",
            output.status,
            log.display()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l.trim()).ok())
        .filter(Value::is_object)
        .collect())
}
