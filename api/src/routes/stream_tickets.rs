//! `POST /api/stream-tickets`: a single-use, short-lived ticket that opens one event
//! or log stream, for a browser's `EventSource`, which cannot send headers.

use crate::error::ApiError;
use crate::extract::bearer;
use crate::routes::problems::{DatabaseUnavailable, TicketsForApiTokens, Unauthorized};
use crate::state::AppState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use shiplog_wire::usecases::StreamTicketBody;

/// Get a stream ticket: pass it as `?ticket=` to one event or log stream route
/// (`/api/events/stream`, `/api/usecases/{id}/events/stream`, the log streams). It
/// works once, within its lifetime (60 s by default), and opens the stream as the
/// caller, whose token is checked again then: a ticket of a token revoked in between
/// opens nothing. It is not a bearer token: every other route refuses it. Any
/// authenticated caller may get one; tickets are not ledger events.
#[utoipa::path(post, path = "/api/stream-tickets", tag = "audit",
    security(("bearer" = [])),
    responses(
        (status = 201, description = "A ticket and when it expires", body = StreamTicketBody),
        Unauthorized, TicketsForApiTokens, DatabaseUnavailable,
    ))]
pub async fn create_stream_ticket(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<StreamTicketBody>), ApiError> {
    // The credential itself, not only its principal: the ticket remembers which token
    // asked, to check it again on use.
    let secret = bearer(&headers)
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::Unauthorized)?;
    let issued = state
        .stream_tickets
        .issue(secret)
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok((
        StatusCode::CREATED,
        Json(StreamTicketBody {
            ticket: issued.ticket,
            expires_at: issued.expires_at,
        }),
    ))
}
