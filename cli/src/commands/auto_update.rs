//! `shiplog auto-update USECASE [--enable|--disable] [--strategy] [--policy] [--range]`:
//! shows a usecase's auto-update (settings, pause, last check), or changes it.

use crate::args::AutoUpdateArgs;
use crate::error::CliError;
use crate::output::Output;
use shiplog_client::Client;
use shiplog_wire::auto_update::{AutoUpdateChangeBody, AutoUpdateState};
use shiplog_wire::platform::StrategyBody;

/// Shows the auto-update, after changing it when a flag asks to.
pub async fn run(api: &Client, out: &Output, args: AutoUpdateArgs) -> Result<(), CliError> {
    let id = api.resolve_usecase(&args.usecase).await?;
    let changes = args.enable
        || args.disable
        || args.strategy.is_some()
        || args.policy.is_some()
        || args.range.is_some();
    let state = if changes {
        // A flag that does not name enabled keeps it as it is.
        let enabled = if args.enable || args.disable {
            args.enable
        } else {
            api.auto_update(id).await?.enabled
        };
        let body = AutoUpdateChangeBody {
            enabled,
            strategy: args.strategy.map(Into::into),
            policy: args.policy.map(Into::into),
            range: args.range,
        };
        api.set_auto_update(id, &body).await?
    } else {
        api.auto_update(id).await?
    };
    if out.is_json() {
        return out.json(&state);
    }
    out.fields(&fields(&state))
}

/// The state as `KEY value` lines for people.
fn fields(state: &AutoUpdateState) -> Vec<(&'static str, String)> {
    let mut fields = vec![
        ("enabled", state.enabled.to_string()),
        (
            "strategy",
            match state.strategy {
                StrategyBody::Rolling => "rolling",
                StrategyBody::Recreate => "recreate",
            }
            .to_owned(),
        ),
        (
            "policy",
            match &state.range {
                Some(range) => format!("semver {range}"),
                None => "digest".to_owned(),
            },
        ),
        (
            "paused",
            match &state.paused {
                Some(p) => format!("since {}: {}", p.since.to_rfc3339(), p.reason),
                None => "no".to_owned(),
            },
        ),
    ];
    match &state.check {
        Some(c) => {
            fields.push((
                "last check",
                format!("{} ({}): {}", c.at.to_rfc3339(), c.trigger, c.outcome),
            ));
            fields.push((
                "last seen",
                match &c.digest {
                    Some(digest) => format!("{}@{digest}", c.tag),
                    None => c.tag.clone(),
                },
            ));
            if !c.message.is_empty() {
                fields.push(("message", c.message.clone()));
            }
            if let Some(resumes) = c.resumes {
                fields.push(("next check after", resumes.to_rfc3339()));
            }
        }
        None => fields.push(("last check", "none yet".to_owned())),
    }
    fields
}
