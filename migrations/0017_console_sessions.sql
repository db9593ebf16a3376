-- Sessions of the web console. Only a SHA-256 of the session id (the cookie's value)
-- is kept, so a copy of this table opens no session. Each session is bound to the
-- API token it was opened with (the token's own hash, as api_tokens stores it): every
-- request checks that token again, so revoking it ends the session. A session opened
-- with an OIDC token (a JWT, which is in no table) keeps instead the principal the
-- identity provider vouched for, and expires no later than the JWT did.
CREATE TABLE console_sessions
(
    id_hash    bytea PRIMARY KEY,
    token_hash bytea,
    principal  jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CONSTRAINT console_sessions_one_basis CHECK ((token_hash IS NULL) <> (principal IS NULL))
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
