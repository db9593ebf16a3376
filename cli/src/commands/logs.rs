//! `shiplog logs`: the deployed deployment's container logs, once or followed.

use crate::args::LogsArgs;
use crate::error::CliError;
use crate::output::Output;
use shiplog_client::Client;
use shiplog_wire::operations::LogLineBody;
use std::collections::HashSet;

/// Runs `shiplog logs`.
pub async fn run(api: &Client, out: &Output, args: LogsArgs) -> Result<(), CliError> {
    let id = api.resolve_usecase(&args.usecase).await?;
    if !args.follow {
        let logs = api.logs(id, args.tail).await?;
        if out.is_json() {
            return out.json(&logs);
        }
        let pods: HashSet<&str> = logs.lines.iter().map(|l| l.pod.as_str()).collect();
        let prefixed = pods.len() > 1;
        for line in &logs.lines {
            out.line(&render(line, prefixed))?;
        }
        return Ok(());
    }
    // Lines arrive pod by pod as they are written; name the pod when there are several,
    // known from the deployment's replicas before the first line comes (when the token
    // may read the usecase; otherwise from the second pod on).
    let replicas = api
        .usecase(id)
        .await
        .ok()
        .and_then(|u| u.deployment?.config.replicas)
        .unwrap_or(1);
    let mut pods: HashSet<String> = HashSet::new();
    let mut follower = api.follow_logs(id, args.tail).await?;
    while let Some(line) = follower.next().await? {
        if out.is_json() {
            out.json_line(&line)?;
            continue;
        }
        pods.insert(line.pod.clone());
        out.line(&render(&line, replicas > 1 || pods.len() > 1))?;
    }
    Ok(())
}

/// A log line, after its pod's name when lines of several pods mix.
fn render(line: &LogLineBody, prefixed: bool) -> String {
    if prefixed {
        format!("[{}] {}", line.pod, line.line)
    } else {
        line.line.clone()
    }
}
