//! The frame every console page shares (head, navigation, who is logged in, logout)
//! and the small pieces pages repeat: status badges, the CSRF field, error notes.

use super::session::{ConsoleSession, CSRF_FIELD};
use maud::{html, Markup, DOCTYPE};

/// Where the console's vendored assets are served (long-cached: their names carry
/// their versions' content through [`ASSET_VERSION`]).
pub const ASSETS: &str = "/console/assets";
/// Changes whenever an asset does, so that browsers holding the old one for a year ask
/// again: part of every asset URL.
pub const ASSET_VERSION: &str = "1";

/// Which section of the navigation a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    /// `/deployments` and a deployment's page.
    Deployments,
    /// `/ledger`.
    Ledger,
    /// `/audit`.
    Audit,
    /// `/login`: no navigation.
    Login,
}

/// A whole page: `title`, the navigation (with `session`'s name and logout), `body`.
pub fn page(
    title: &str,
    section: Section,
    session: Option<&ConsoleSession>,
    body: Markup,
) -> Markup {
    let nav = [
        (Section::Deployments, "/deployments", "Deployments"),
        (Section::Ledger, "/ledger", "Ledger"),
        (Section::Audit, "/audit", "Audit"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · shiplog" }
                link rel="stylesheet" href={ (ASSETS) "/console.css?v=" (ASSET_VERSION) };
                script src={ (ASSETS) "/htmx.min.js?v=" (ASSET_VERSION) } defer {}
                script src={ (ASSETS) "/htmx-ext-sse.min.js?v=" (ASSET_VERSION) } defer {}
                script src={ (ASSETS) "/console.js?v=" (ASSET_VERSION) } defer {}
            }
            body hx-ext="sse" {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/deployments" { "shiplog" }
                    @if let Some(session) = session {
                        nav aria-label="Console" {
                            ul {
                                @for (s, href, label) in nav {
                                    li {
                                        a href=(href) aria-current=[(s == section).then_some("page")] { (label) }
                                    }
                                }
                                li { a href="/redocs" { "API" } }
                            }
                        }
                        div.who {
                            span title="The principal recorded as the actor of what you do here" {
                                "Signed in as " strong { (session.principal.name) }
                            }
                            form method="post" action="/logout" {
                                (csrf_field(session))
                                button.link type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main #main { (body) }
            }
        }
    }
}

/// The hidden field that carries the session's CSRF token in a form.
pub fn csrf_field(session: &ConsoleSession) -> Markup {
    html! { input type="hidden" name=(CSRF_FIELD) value=(session.csrf_token); }
}

/// The CSS class of a status badge (seed 002's words and the deployments' own).
pub fn badge_class(status: &str) -> &'static str {
    match status.to_ascii_lowercase().as_str() {
        "ready" | "deployed" | "succeeded" => "ok",
        "pending" | "provisioning" | "deploying" | "deleting" => "busy",
        "error" | "failed" => "bad",
        _ => "idle",
    }
}

/// A status badge; `id` makes it the target of live updates.
pub fn badge(status: &str, id: Option<&str>) -> Markup {
    html! {
        span.badge.(badge_class(status)) id=[id] role="status" { (status) }
    }
}

/// A note saying what went wrong, shown above a form that was refused.
pub fn error_note(message: &str) -> Markup {
    html! { p.note.error role="alert" { (message) } }
}

/// A note saying what was done (after a redirect, from the `done` query parameter).
pub fn done_note(message: &str) -> Markup {
    html! { p.note.done role="status" { (message) } }
}
