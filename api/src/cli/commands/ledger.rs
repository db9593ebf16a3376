//! The ledger for people: `shiplog history` (a usecase's audit trail), `shiplog watch`
//! (live events, resumable) and `shiplog audit verify` (the hash chain).

use crate::cli::args::WatchArgs;
use crate::cli::client::Api;
use crate::cli::error::CliError;
use crate::cli::events::{short, LedgerEvent};
use crate::cli::feed::EventFeed;
use crate::cli::output::{text, Output};
use comfy_table::Cell;
use serde_json::{json, Value};
use std::collections::HashMap;

/// `shiplog history`: every event of the usecase, oldest first, all pages.
pub async fn history(api: &Api, out: &Output, usecase: &str) -> Result<(), CliError> {
    let id = api.resolve_usecase(usecase).await?;
    let items = api
        .all_pages(&format!("/api/usecases/{id}/history"), &[])
        .await?;
    if out.is_json() {
        return out.json(&json!({ "items": items, "nextCursor": null }));
    }
    let mut table = out.table(&["TIME (UTC)", "ACTOR", "EVENT", "SUMMARY"]);
    for raw in items {
        let event = LedgerEvent::from_json(raw)?;
        table.add_row(vec![
            Cell::new(event.time()),
            Cell::new(&event.actor),
            Cell::new(&event.kind),
            Cell::new(event.summary()),
        ]);
    }
    out.print_table(table)
}

/// `shiplog watch`: live events, one line each, until interrupted; every line ends with
/// the event's cursor, and Ctrl-C says how to resume after the last one.
pub async fn watch(api: &Api, out: &Output, args: WatchArgs) -> Result<(), CliError> {
    let path = match &args.usecase {
        Some(usecase) => {
            let id = api.resolve_usecase(usecase).await?;
            format!("/api/usecases/{id}/events/stream")
        }
        None => "/api/events/stream".to_owned(),
    };
    let types = (!args.types.is_empty()).then(|| args.types.join(","));
    let mut feed =
        EventFeed::open(api, path, types, args.after.clone(), args.after.clone()).await?;
    feed.notices = true;
    if !out.is_json() {
        eprintln!(
            "watching {} (Ctrl-C to stop)",
            args.usecase.as_deref().unwrap_or("every usecase")
        );
    }
    let mut names = Names::default();
    loop {
        let event = tokio::select! {
            event = feed.next() => event?,
            _ = tokio::signal::ctrl_c() => {
                if let Some(cursor) = feed.last_cursor() {
                    let usecase = args.usecase.as_deref().map(|u| format!(" {u:?}")).unwrap_or_default();
                    eprintln!("\nresume with: shiplog watch{usecase} --after {cursor}");
                }
                return Ok(());
            }
        };
        if out.is_json() {
            out.json_line(&event.raw)?;
            continue;
        }
        let name = names.of(api, &event).await;
        out.line(&format!(
            "{}  {}  {:<21}  {}  (cursor {})",
            event.time(),
            name,
            event.kind,
            event.summary(),
            event.cursor
        ))?;
    }
}

/// Usecase names for `watch` lines, looked up once per usecase.
#[derive(Default)]
struct Names(HashMap<String, String>);

impl Names {
    async fn of(&mut self, api: &Api, event: &LedgerEvent) -> String {
        if event.kind == "UsecaseRegistered" {
            self.0
                .insert(event.usecase_id.clone(), event.text("name").to_owned());
        }
        if let Some(name) = self.0.get(&event.usecase_id) {
            return name.clone();
        }
        // A deleted usecase, or a token without usecases:read: the short id will do.
        let name = api
            .get(&format!("/api/usecases/{}", event.usecase_id), &[])
            .await
            .ok()
            .map(|u| text(&u, "name").to_owned())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| short(&event.usecase_id));
        self.0.insert(event.usecase_id.clone(), name.clone());
        name
    }
}

/// `shiplog audit verify`: recomputes the hash chain; exit 1 when it is broken.
pub async fn verify(api: &Api, out: &Output) -> Result<(), CliError> {
    let report = api.get("/api/audit/verify", &[]).await?;
    let verified = report
        .get("verified")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let number = |field: &str| report.get(field).and_then(Value::as_u64).unwrap_or(0);
    if out.is_json() {
        out.json(&report)?;
    } else if verified {
        out.line(&format!(
            "verified: {} events, head {}{}",
            number("events"),
            text(&report, "head"),
            match number("unsealed") {
                0 => String::new(),
                n => format!(" ({n} recorded events not sealed yet)"),
            }
        ))?;
    }
    if verified {
        return Ok(());
    }
    let broken = report.get("brokenAt").cloned().unwrap_or(Value::Null);
    let at = |field: &str| match broken.get(field) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "?".to_owned(),
    };
    Err(CliError::ChainBroken(format!(
        "chainIndex {} (cursor {}, usecase {}, sequence {}): {}",
        at("chainIndex"),
        at("cursor"),
        at("usecaseId"),
        at("sequence"),
        at("reason")
    )))
}
