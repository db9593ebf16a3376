//! Every way a client command can fail, and the exit code each one becomes.

use shiplog_client::ClientError;
use std::io;
use uuid::Uuid;

/// Exit code of a command that did what it was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code of a failure: the server refused or failed, the network, a deployment that
/// ended in error or was superseded while waiting, a wait that timed out.
pub const EXIT_ERROR: u8 = 1;
/// Exit code of a command line clap (or the client) could not make sense of.
pub const EXIT_USAGE: u8 = 2;
/// Exit code when the usecase, deployment, team or token does not exist (404, or no
/// usecase, team or token of the name given).
pub const EXIT_NOT_FOUND: u8 = 3;
/// Exit code when the request contradicts the current state (409: name taken, nothing deployed, …).
pub const EXIT_CONFLICT: u8 = 4;

/// What went wrong in a client command, in words a user can act on; each variant says
/// which exit code it becomes.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// What the client says went wrong: no answer (1), 401 (1), a refusal whose 404
    /// becomes 3 and 409 becomes 4 (the rest, a 403 for a missing scope, someone else's
    /// usecase or a tier's limit too, 1), no usecase of the name given (3), or an answer
    /// it cannot read (1).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// 3: a name given in place of a team id matches no team this token can see.
    #[error("no team named {0:?} among the teams this token can see")]
    NoSuchTeam(String),
    /// 3: a name given in place of a token id matches no active token.
    #[error("no token named {0:?}")]
    NoSuchToken(String),
    /// 1: the deployment waited for ended in `error`.
    #[error("deployment {id} failed: {message}")]
    DeploymentFailed {
        /// The deployment.
        id: Uuid,
        /// The reason the process manager recorded.
        message: String,
    },
    /// 1: a newer deployment replaced the one waited for before it was deployed.
    #[error("deployment {id} was superseded by {by}")]
    DeploymentSuperseded {
        /// The deployment waited for.
        id: Uuid,
        /// The deployment that replaced it.
        by: String,
    },
    /// 1: the deployment waited for was undeployed before it was deployed.
    #[error("deployment {0} was undeployed before it was deployed")]
    DeploymentUndeployed(Uuid),
    /// 1: the restart waited for failed.
    #[error("restart {id} failed: {message}")]
    RestartFailed {
        /// The restart.
        id: Uuid,
        /// Why.
        message: String,
    },
    /// 1: `--timeout` ran out before the outcome.
    #[error("gave up after {secs} s (--timeout): {state}")]
    TimedOut {
        /// The timeout.
        secs: u64,
        /// Where things stood.
        state: String,
    },
    /// 1: `audit verify` found the hash chain broken.
    #[error("the audit chain is broken at {0}")]
    ChainBroken(String),
    /// 1: the server answered something this client does not understand.
    #[error("unexpected answer from shiplog: {0}")]
    Unexpected(String),
    /// 2: arguments that parse but cannot be used together or as given.
    #[error("{0}")]
    Usage(String),
    /// 1: stdout could not be written (a closed pipe ends the command quietly with 0).
    #[error("cannot write the output: {0}")]
    Output(#[from] io::Error),
}

impl CliError {
    /// An answer (or a local encoding) this client cannot make sense of.
    pub fn unexpected(what: impl Into<String>) -> Self {
        Self::Client(ClientError::Unexpected(what.into()))
    }

    /// The process exit code for this error (documented in `--help` and the README).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(ClientError::Api { status: 404, .. })
            | Self::Client(ClientError::NoSuchUsecase(_))
            | Self::NoSuchTeam(_)
            | Self::NoSuchToken(_) => EXIT_NOT_FOUND,
            Self::Client(ClientError::Api { status: 409, .. }) => EXIT_CONFLICT,
            Self::Usage(_) => EXIT_USAGE,
            Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
            _ => EXIT_ERROR,
        }
    }

    /// Whether the error is worth a message (a reader that closed the pipe is not).
    pub fn is_silent(&self) -> bool {
        matches!(self, Self::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_error_has_its_documented_exit_code() {
        let api = |status| {
            CliError::from(ClientError::Api {
                status,
                detail: "x".to_owned(),
                field: None,
                kind: None,
            })
        };
        let cases = [
            ("a 404", api(404), 3),
            ("a 409", api(409), 4),
            ("a 403: a scope, ownership or a tier's limit", api(403), 1),
            ("a 422", api(422), 1),
            ("a 503", api(503), 1),
            ("a 401", CliError::from(ClientError::Unauthorized), 1),
            (
                "an unknown name",
                CliError::from(ClientError::NoSuchUsecase("x".into())),
                3,
            ),
            ("an unknown team name", CliError::NoSuchTeam("x".into()), 3),
            ("a usage error", CliError::Usage("x".into()), 2),
            (
                "a closed pipe",
                CliError::Output(io::Error::from(io::ErrorKind::BrokenPipe)),
                0,
            ),
        ];
        for (description, error, code) in cases {
            assert_eq!(error.exit_code(), code, "{description}");
        }
    }

    #[test]
    fn a_problem_names_its_field_when_there_is_one() {
        let error = CliError::from(ClientError::Api {
            status: 422,
            detail: "config.image.tag: bad".to_owned(),
            field: Some("config.image.tag".to_owned()),
            kind: None,
        });
        assert_eq!(
            error.to_string(),
            "config.image.tag: bad (field: config.image.tag)"
        );
    }
}
