-- API tokens, stored as SHA-256 of the secret; the secret itself is shown once at creation.
CREATE TABLE api_tokens
(
    id         uuid PRIMARY KEY,
    name       text        NOT NULL,
    scopes     text[]      NOT NULL,
    token_hash bytea       NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL,
    revoked_at timestamptz
);

CREATE UNIQUE INDEX api_tokens_active_name ON api_tokens (name) WHERE revoked_at IS NULL;
