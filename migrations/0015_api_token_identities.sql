-- An OIDC subject may not be the name or the subject of any API token ever issued
-- (revoked ones too): shiplog asks on every request that carries an OIDC token, so
-- the question is answered from indexes, whatever the number of tokens over time.
CREATE INDEX api_tokens_name ON api_tokens (name);
CREATE INDEX api_tokens_subject ON api_tokens (subject);
