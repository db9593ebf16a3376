-- Access in the ledger (the `Token` aggregate: TokenCreated, TokenScopesChanged,
-- TokenRevoked) and short-lived stream tickets.

-- When a token stops working; null: never.
ALTER TABLE api_tokens ADD COLUMN expires_at timestamptz;

-- Tokens created before access was kept in the ledger get their TokenCreated now,
-- recorded with the instant they were created and the admin who created them, so
-- that every token that works has its event and can be revoked as a ledger command.
-- Tokens revoked before stay as rows only (no use of them can follow).
INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
SELECT 'Token',
       id::text,
       1,
       'TokenCreated',
       '1.0',
       json_build_object('TokenCreated', json_build_object(
           'tokenId', id, 'name', name, 'scopes', scopes, 'subject', subject,
           'teams', teams, 'at', created_at)),
       json_build_object(
           'actor', created_by, 'request_id', 'migration-0014',
           'reason', 'recorded by migration 0014: the token was created before access was kept in the ledger')
  FROM api_tokens
 WHERE revoked_at IS NULL
 ORDER BY created_at, id;

-- Single-use tickets for event streams (`POST /api/stream-tickets`): only their
-- SHA-256 is kept; `credential` says who asked ('bootstrap', or 'token' with its
-- id), checked again when the ticket is used. Operational state, not ledger facts:
-- expired rows are deleted as new tickets are issued.
CREATE TABLE stream_tickets
(
    ticket_hash bytea PRIMARY KEY,
    credential  text        NOT NULL,
    token_id    uuid,
    principal   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);

CREATE INDEX stream_tickets_expiry ON stream_tickets (expires_at);
