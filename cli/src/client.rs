//! What the command line adds to the typed client: team names resolved for `--team`
//! and shown in cells, fetched at most once per command.

use crate::error::CliError;
use crate::events::short;
use shiplog_client::Client;
use shiplog_wire::teams::TeamBody;
use uuid::Uuid;

/// Team names and ids as this token sees them (`GET /api/teams`: its own teams, every
/// team for an admin), fetched at most once per command and only when a name is needed.
pub struct TeamLookup<'a> {
    api: &'a Client,
    teams: Option<Vec<TeamBody>>,
}

impl<'a> TeamLookup<'a> {
    /// A lookup that has not asked the server anything yet.
    pub fn new(api: &'a Client) -> Self {
        Self { api, teams: None }
    }

    /// The id of the team `id_or_name` names: a UUID is taken as an id as it is (the
    /// server then checks it), anything else must be the exact name of a team this
    /// token can see (exit 3 otherwise).
    pub async fn resolve(&mut self, id_or_name: &str) -> Result<Uuid, CliError> {
        let wanted = id_or_name.trim();
        if let Ok(id) = wanted.parse::<Uuid>() {
            return Ok(id);
        }
        self.teams()
            .await?
            .iter()
            .find(|t| t.name == wanted)
            .map(|t| t.id)
            .ok_or_else(|| CliError::NoSuchTeam(wanted.to_owned()))
    }

    /// `resolve` for an optional `--team`.
    pub async fn resolve_opt(
        &mut self,
        id_or_name: Option<&str>,
    ) -> Result<Option<Uuid>, CliError> {
        match id_or_name {
            Some(team) => Ok(Some(self.resolve(team).await?)),
            None => Ok(None),
        }
    }

    /// How to show team `id` in a cell: its name, or when this token cannot see it
    /// (a team its subject has left), the start of its id.
    pub async fn display(&mut self, id: Uuid) -> Result<String, CliError> {
        let name = self.teams().await?.iter().find(|t| t.id == id);
        Ok(match name {
            Some(team) => team.name.clone(),
            None => short(&id.to_string()),
        })
    }

    async fn teams(&mut self) -> Result<&[TeamBody], CliError> {
        if self.teams.is_none() {
            self.teams = Some(self.api.teams().await?);
        }
        Ok(self.teams.as_deref().unwrap_or_default())
    }
}
