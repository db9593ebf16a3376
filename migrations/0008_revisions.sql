-- A usecase's changes as seed 002's history shows them: one row per change
-- (deploy, config change, rollback, restart, auto-update, delete request),
-- with how it ended so far. A read model like the others: rebuilt from the log,
-- paged by revision (the change's event sequence) so a page costs the same at
-- any length of history.
CREATE TABLE revision_view
(
    usecase_id    uuid        NOT NULL,
    revision      bigint      NOT NULL,
    kind          text        NOT NULL,
    at            timestamptz NOT NULL,
    actor         text        NOT NULL,
    request_id    text        NOT NULL,
    deployment_id uuid,
    restart_id    uuid,
    image         text,
    status        text,
    message       text        NOT NULL DEFAULT '',
    based_on      uuid,
    rollback_of   uuid,
    variables     text[]      NOT NULL DEFAULT '{}',
    auto_update   jsonb,
    PRIMARY KEY (usecase_id, revision)
);

-- Outcome events find the change they end by its deployment or restart.
CREATE INDEX revision_view_by_deployment ON revision_view (deployment_id) WHERE restart_id IS NULL;
CREATE INDEX revision_view_by_restart ON revision_view (restart_id) WHERE restart_id IS NOT NULL;
