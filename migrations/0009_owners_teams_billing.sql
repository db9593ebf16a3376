-- Owners, teams and tier limits.

-- A token speaks for a subject (who owns what it creates; by default its name)
-- and the teams that subject belongs to.
ALTER TABLE api_tokens
    ADD COLUMN subject text,
    ADD COLUMN teams   uuid[] NOT NULL DEFAULT '{}';
UPDATE api_tokens SET subject = name;
ALTER TABLE api_tokens ALTER COLUMN subject SET NOT NULL;

-- Who owns a usecase: rows of usecases registered before owners existed take the
-- registering actor, as the projection does for their events.
ALTER TABLE usecase_view
    ADD COLUMN owner   text,
    ADD COLUMN team_id uuid;
UPDATE usecase_view SET owner = created_by;
ALTER TABLE usecase_view ALTER COLUMN owner SET NOT NULL;
CREATE INDEX usecase_view_by_owner ON usecase_view (owner);
CREATE INDEX usecase_view_by_team ON usecase_view (team_id) WHERE team_id IS NOT NULL;

-- Teams as the read model shows them.
CREATE TABLE team_view
(
    id         uuid PRIMARY KEY,
    name       text        NOT NULL,
    tier       text        NOT NULL,
    created_at timestamptz NOT NULL,
    created_by text        NOT NULL,
    updated_at timestamptz NOT NULL,
    updated_by text        NOT NULL
);

-- What must hold under concurrency is kept by a trigger in the same transaction
-- as the events that change it, like usecase names: unique team names, and how
-- many deployments each billing account (a team, or a subject's personal ones)
-- has, checked against its tier's limit under the account row's lock, so that
-- of twenty parallel creates on a free team exactly one commits.
CREATE TABLE team_names
(
    name    text PRIMARY KEY,
    team_id text NOT NULL UNIQUE
);

CREATE TABLE billing_accounts
(
    -- 'team:<team id>' or 'subject:<subject>'
    account text PRIMARY KEY,
    -- a team's tier; 'personal' for a subject (its tier is a setting: --personal-tier)
    tier    text    NOT NULL,
    live    integer NOT NULL DEFAULT 0 CHECK (live >= 0)
);

-- Each usecase's account and lifetime, for usage over a time range.
CREATE TABLE billing_usecases
(
    usecase_id text PRIMARY KEY,
    account    text        NOT NULL REFERENCES billing_accounts (account),
    created_at timestamptz NOT NULL,
    deleted_at timestamptz
);
CREATE INDEX billing_usecases_by_created ON billing_usecases (account, created_at);
CREATE INDEX billing_usecases_by_deleted ON billing_usecases (account, deleted_at) WHERE deleted_at IS NOT NULL;

-- The limit of a tier, from the session settings shiplog sets on each of its
-- connections (--billing, --tier-limit); NULL: no limit (or billing off).
CREATE FUNCTION shiplog_tier_limit(tier text) RETURNS integer
    LANGUAGE plpgsql STABLE AS
$$
DECLARE
    raw text;
BEGIN
    IF coalesce(current_setting('shiplog.billing', true), 'off') <> 'on' THEN
        RETURN NULL;
    END IF;
    raw := current_setting('shiplog.limit_' || tier, true);
    IF raw IS NULL OR raw = '' OR raw = 'unlimited' THEN
        RETURN NULL;
    END IF;
    RETURN raw::integer;
END;
$$;

CREATE FUNCTION billing_track() RETURNS trigger
    LANGUAGE plpgsql AS
$$
DECLARE
    body      jsonb;
    acct      text;
    acct_tier text;
    team      text;
    now_live  integer;
    lim       integer;
BEGIN
    IF NEW.aggregate_type = 'Team' THEN
        body := NEW.payload::jsonb -> NEW.event_type;
        IF NEW.event_type = 'TeamCreated' THEN
            INSERT INTO team_names (name, team_id) VALUES (body ->> 'name', NEW.aggregate_id);
            INSERT INTO billing_accounts (account, tier) VALUES ('team:' || NEW.aggregate_id, body ->> 'tier');
        ELSIF NEW.event_type = 'TeamRenamed' THEN
            UPDATE team_names SET name = body ->> 'name' WHERE team_id = NEW.aggregate_id;
        ELSIF NEW.event_type = 'TeamTierChanged' THEN
            -- In force for the next create at once: it is read under the same row lock.
            UPDATE billing_accounts SET tier = body ->> 'tier' WHERE account = 'team:' || NEW.aggregate_id;
        END IF;
    ELSIF NEW.aggregate_type = 'Usecase' AND NEW.event_type = 'UsecaseRegistered' THEN
        body := NEW.payload::jsonb -> 'UsecaseRegistered';
        team := body ->> 'team';
        IF team IS NOT NULL THEN
            acct := 'team:' || team;
            IF NOT EXISTS (SELECT 1 FROM billing_accounts WHERE account = acct) THEN
                RAISE EXCEPTION 'team % does not exist', team
                    USING ERRCODE = 'foreign_key_violation', CONSTRAINT = 'usecase_team';
            END IF;
        ELSE
            acct := 'subject:' || coalesce(body ->> 'owner', NEW.metadata::jsonb ->> 'actor', 'system');
            INSERT INTO billing_accounts (account, tier) VALUES (acct, 'personal')
            ON CONFLICT (account) DO NOTHING;
        END IF;
        -- The row lock serialises concurrent creates of one account: each sees the count
        -- the previous one committed.
        UPDATE billing_accounts SET live = live + 1 WHERE account = acct
        RETURNING live, tier INTO now_live, acct_tier;
        IF acct_tier = 'personal' THEN
            acct_tier := coalesce(nullif(current_setting('shiplog.personal_tier', true), ''), 'free');
        END IF;
        lim := shiplog_tier_limit(acct_tier);
        IF lim IS NOT NULL AND now_live > lim THEN
            RAISE EXCEPTION 'deployment limit reached'
                USING ERRCODE = 'check_violation', CONSTRAINT = 'tier_limit',
                    DETAIL = format('the %s tier allows %s deployment(s), and %s has them already',
                                    acct_tier, lim, acct);
        END IF;
        INSERT INTO billing_usecases (usecase_id, account, created_at)
        VALUES (NEW.aggregate_id, acct, NEW.recorded_at);
    ELSIF NEW.aggregate_type = 'Usecase' AND NEW.event_type = 'UsecaseDeleted' THEN
        UPDATE billing_usecases SET deleted_at = NEW.recorded_at
         WHERE usecase_id = NEW.aggregate_id
        RETURNING account INTO acct;
        UPDATE billing_accounts SET live = live - 1 WHERE account = acct;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER billing_track
    AFTER INSERT
    ON events
    FOR EACH ROW
EXECUTE FUNCTION billing_track();

-- The ledger so far: every usecase was personal, owned by the actor that registered it.
INSERT INTO billing_accounts (account, tier)
SELECT DISTINCT 'subject:' || coalesce(payload -> 'UsecaseRegistered' ->> 'owner', metadata ->> 'actor', 'system'), 'personal'
  FROM events
 WHERE aggregate_type = 'Usecase' AND event_type = 'UsecaseRegistered';

INSERT INTO billing_usecases (usecase_id, account, created_at, deleted_at)
SELECT r.aggregate_id,
       'subject:' || coalesce(r.payload -> 'UsecaseRegistered' ->> 'owner', r.metadata ->> 'actor', 'system'),
       r.recorded_at,
       d.recorded_at
  FROM events r
  LEFT JOIN events d
    ON d.aggregate_type = 'Usecase' AND d.aggregate_id = r.aggregate_id AND d.event_type = 'UsecaseDeleted'
 WHERE r.aggregate_type = 'Usecase' AND r.event_type = 'UsecaseRegistered';

UPDATE billing_accounts a
   SET live = (SELECT count(*) FROM billing_usecases u WHERE u.account = a.account AND u.deleted_at IS NULL);
