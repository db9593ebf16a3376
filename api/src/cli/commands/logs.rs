//! `shiplog logs`: the deployed deployment's container logs, once or followed.

use crate::cli::args::LogsArgs;
use crate::cli::client::Api;
use crate::cli::error::CliError;
use crate::cli::output::{text, Output};
use reqwest::Method;
use serde_json::Value;
use std::collections::HashSet;

/// Prints the last lines of each pod; with --follow, keeps printing new ones (NDJSON).
pub async fn run(api: &Api, out: &Output, args: LogsArgs) -> Result<(), CliError> {
    let tail = args.tail.map(|t| t.to_string());
    let mut query: Vec<(&str, &str)> = tail.as_deref().map(|t| ("tail", t)).into_iter().collect();
    if !args.follow {
        let usecase = api.resolve_usecase(&args.usecase).await?;
        let logs = api
            .get(&format!("/api/usecases/{usecase}/logs"), &query)
            .await?;
        if out.is_json() {
            return out.json(&logs);
        }
        let lines = logs
            .get("lines")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let pods: HashSet<&str> = lines.iter().map(|l| text(l, "pod")).collect();
        let prefixed = pods.len() > 1;
        for line in &lines {
            out.line(&render(line, prefixed))?;
        }
        return Ok(());
    }
    let id = api.resolve_usecase(&args.usecase).await?;
    // Lines arrive pod by pod as they are written; name the pod when there are several,
    // known from the deployment's replicas before the first line comes (when the token
    // may read the usecase; otherwise from the second pod on).
    let replicas = api
        .get(&format!("/api/usecases/{id}"), &[])
        .await
        .ok()
        .and_then(|u| {
            u.get("deployment")?
                .get("config")?
                .get("replicas")?
                .as_u64()
        })
        .unwrap_or(1);
    let mut pods: HashSet<String> = HashSet::new();
    query.push(("follow", "true"));
    let mut response = api
        .send(
            api.request(Method::GET, &format!("/api/usecases/{id}/logs"))
                .query(&query),
        )
        .await?;
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| api.unreachable(&e))? {
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let raw: Vec<u8> = pending.drain(..=end).collect();
            let Ok(line) = serde_json::from_slice::<Value>(&raw) else {
                continue; // a line cut by a broken connection; the next one is whole
            };
            if out.is_json() {
                out.json_line(&line)?;
                continue;
            }
            pods.insert(text(&line, "pod").to_owned());
            out.line(&render(&line, replicas > 1 || pods.len() > 1))?;
        }
    }
    Ok(())
}

/// One log line, after its pod's name when several pods speak.
fn render(line: &Value, prefixed: bool) -> String {
    if prefixed {
        format!("[{}] {}", text(line, "pod"), text(line, "line"))
    } else {
        text(line, "line").to_owned()
    }
}
