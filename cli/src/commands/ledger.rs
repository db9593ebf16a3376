//! The ledger for people: `shiplog history` (a usecase's audit trail), `shiplog watch`
//! (live events, resumable) and `shiplog audit verify` (the hash chain).

use crate::args::WatchArgs;
use crate::error::CliError;
use crate::events::{short, LedgerEvent};
use crate::output::Output;
use comfy_table::Cell;
use shiplog_client::{Client, StreamStart};
use shiplog_wire::ledger::{ChainBreakBody, EventPage};
use std::collections::HashMap;
use uuid::Uuid;

/// `shiplog history`: every event of the usecase, oldest first, all pages.
pub async fn history(api: &Client, out: &Output, usecase: &str) -> Result<(), CliError> {
    let id = api.resolve_usecase(usecase).await?;
    let items = api.history(id).await?;
    if out.is_json() {
        return out.json(&EventPage {
            items,
            next_cursor: None,
        });
    }
    let mut table = out.table(&["TIME (UTC)", "ACTOR", "EVENT", "SUMMARY", "REASON"]);
    for record in items {
        let event = LedgerEvent::new(record);
        table.add_row(vec![
            Cell::new(event.time()),
            Cell::new(event.actor()),
            Cell::new(event.kind()),
            Cell::new(event.summary()),
            Cell::new(event.reason().unwrap_or_default()),
        ]);
    }
    out.print_table(table)
}

/// `shiplog watch`: live events, one line each, until interrupted; every line ends with
/// the event's cursor, and Ctrl-C says how to resume after the last one.
pub async fn watch(api: &Client, out: &Output, args: WatchArgs) -> Result<(), CliError> {
    let usecase = match &args.usecase {
        Some(usecase) => Some(api.resolve_usecase(usecase).await?),
        None => None,
    };
    let start = StreamStart {
        types: (!args.types.is_empty()).then(|| args.types.join(",")),
        after: args.after.clone(),
        fallback: args.after.clone(),
    };
    let mut feed = api.follow(usecase, start).await?;
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
            event = feed.next() => LedgerEvent::new(event?),
            _ = tokio::signal::ctrl_c() => {
                if let Some(cursor) = feed.last_cursor() {
                    let usecase = args.usecase.as_deref().map(|u| format!(" {u:?}")).unwrap_or_default();
                    eprintln!("\nresume with: shiplog watch{usecase} --after {cursor}");
                }
                return Ok(());
            }
        };
        if out.is_json() {
            out.json_line(&event.record)?;
            continue;
        }
        let name = names.of(api, &event).await;
        out.line(&format!(
            "{}  {}  {:<21}  {}  (cursor {})",
            event.time(),
            name,
            event.kind(),
            event.summary(),
            event.cursor()
        ))?;
    }
}

/// Usecase names for `watch` lines, looked up once per usecase.
#[derive(Default)]
struct Names(HashMap<String, String>);

impl Names {
    async fn of(&mut self, api: &Client, event: &LedgerEvent) -> String {
        let usecase = event.usecase_id();
        if event.kind() == "UsecaseRegistered" {
            self.0
                .insert(usecase.to_owned(), event.text("name").to_owned());
        }
        if let Some(name) = self.0.get(usecase) {
            return name.clone();
        }
        // A deleted usecase, a team's event, or a token without usecases:read: the
        // short id will do.
        let name = match usecase.parse::<Uuid>() {
            Ok(id) => api.usecase(id).await.ok().map(|u| u.name),
            Err(_) => None,
        }
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| short(usecase));
        self.0.insert(usecase.to_owned(), name.clone());
        name
    }
}

/// `shiplog audit verify`: recomputes the hash chain; exit 1 when it is broken.
pub async fn verify(api: &Client, out: &Output) -> Result<(), CliError> {
    let report = api.verify().await?;
    if out.is_json() {
        out.json(&report)?;
    } else if report.verified {
        out.line(&format!(
            "verified: {} events, head {}{}",
            report.events,
            report.head.as_deref().unwrap_or(""),
            match report.unsealed {
                0 => String::new(),
                n => format!(" ({n} recorded events not sealed yet)"),
            }
        ))?;
    }
    if report.verified {
        return Ok(());
    }
    let unknown = || "?".to_owned();
    let broken = report.broken_at;
    let at = |field: fn(&ChainBreakBody) -> Option<String>| {
        broken.as_ref().and_then(field).unwrap_or_else(unknown)
    };
    Err(CliError::ChainBroken(format!(
        "chainIndex {} (cursor {}, usecase {}, sequence {}): {}",
        at(|b| Some(b.chain_index.to_string())),
        at(|b| b.cursor.clone()),
        at(|b| b.usecase_id.clone()),
        at(|b| b.sequence.map(|s| s.to_string())),
        at(|b| Some(b.reason.clone()))
    )))
}
