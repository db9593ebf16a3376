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
        Err(why) => return vec![Row::not_measured("6", WHAT, TARGET, &why)],
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
            "6",
            WHAT,
            TARGET,
            "no rebuild line in its output",
        ));
    }
    rows
}

/// Measurement 8: SSE fan-out, from the `sse` binary; one row per line it prints, its
/// fields as they come (the binary names its own targets).
pub async fn sse(ctx: &Ctx) -> Vec<Row> {
    const WHAT: &str = "SSE fan-out";
    const TARGET: &str = "see the sse binary's fields";
    let lines = match run(ctx, "sse").await {
        Ok(lines) => lines,
        Err(why) => return vec![Row::not_measured("7", WHAT, TARGET, &why)],
    };
    let rows: Vec<Row> = lines
        .iter()
        .filter(|l| l["measure"] == "sse")
        .map(|line| {
            let met = match line.get("met").and_then(Value::as_bool) {
                Some(ok) => Met::from(ok),
                None => Met::Info,
            };
            let subscribers = line.get("subscribers").map(show);
            Row {
                id: "8".into(),
                what: subscribers
                    .map_or_else(|| WHAT.to_owned(), |n| format!("{WHAT}, {n} subscribers")),
                value: context_fields(
                    line,
                    &[
                        "measure",
                        "subscribers",
                        "target",
                        "met",
                        "baseline",
                        "ratio",
                    ],
                ),
                baseline: line.get("baseline").map_or_else(|| "-".to_owned(), show),
                ratio: line.get("ratio").map_or_else(|| "-".to_owned(), show),
                target: line.get("target").map_or_else(|| TARGET.to_owned(), show),
                met,
            }
        })
        .collect();
    if rows.is_empty() {
        return vec![Row::not_measured(
            "7",
            WHAT,
            TARGET,
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
