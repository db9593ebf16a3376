-- Auto-update (issue 16): the policy a usecase follows and the pause a manual
-- rollback leaves, in the usecase's row; and what the watcher last saw, which is
-- operational state, not a ledger fact (a check that finds nothing new records no
-- event: the ledger holds the updates it caused, with the check as causation).
ALTER TABLE usecase_view
    ADD COLUMN auto_update_policy text  NOT NULL DEFAULT 'digest',
    ADD COLUMN auto_update_range  text,
    ADD COLUMN auto_update_pause  jsonb;
-- The watcher walks the usecases that follow their tag, however many do not.
CREATE INDEX usecase_view_following ON usecase_view (id) WHERE auto_update_enabled;

CREATE TABLE auto_update_checks (
    usecase_id    uuid        PRIMARY KEY,
    -- The last check: when, what it compared, what it found (all null while a
    -- notification asked for a first check that has not run yet).
    check_id      uuid,
    checked_at    timestamptz,
    trigger       text,
    tag           text,
    digest        text,
    outcome       text,
    message       text        NOT NULL DEFAULT '',
    -- A registry notification asked for a check at once (cleared by the next check).
    requested_at  timestamptz,
    -- After a 429 or an outage the next check waits until then.
    not_before    timestamptz
);
