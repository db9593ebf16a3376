-- The data keys that seal secret environment values, one per usecase, kept apart
-- from the event table: the events hold ciphertext only (see README, "Secrets").
-- Each key is stored wrapped (encrypted) by the master key (`--secret-key-file`),
-- with the fingerprints of both, so that a wrong master key is told apart from
-- altered data.
--
-- Crypto-shredding: when a usecase's deletion is recorded (a `UsecaseDeleted`
-- event), the trigger below erases its wrapped key in the same transaction, and
-- leaves a tombstone with the fingerprint and `destroyed_at`. The key is therefore
-- destroyed exactly when, and only when, the deletion is in the ledger; its
-- ciphertext stays in the events (the hash chain covers it) and can never be
-- opened again. A tombstone is left for a usecase that never had a key too, so
-- that no key is created for a deleted usecase afterwards.
CREATE TABLE secret_keys
(
    usecase_id         uuid PRIMARY KEY,
    -- The first 8 bytes of SHA-256 of the data key, hex; shown beside masked values.
    -- NULL only in the tombstone of a usecase that never had a key.
    fingerprint        text,
    -- The fingerprint of the master key that wrapped it.
    master_fingerprint text,
    -- The 24-byte nonce followed by the XChaCha20-Poly1305 ciphertext of the key; NULL once destroyed.
    wrapped_key        bytea,
    created_at         timestamptz NOT NULL DEFAULT now(),
    destroyed_at       timestamptz,
    CONSTRAINT secret_key_destroyed CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
);

CREATE FUNCTION secret_keys_shred() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.aggregate_type = 'Usecase' AND NEW.event_type = 'UsecaseDeleted' THEN
        INSERT INTO secret_keys (usecase_id, destroyed_at)
        VALUES (NEW.aggregate_id::uuid, now())
        ON CONFLICT (usecase_id) DO UPDATE
            SET wrapped_key = NULL, destroyed_at = coalesce(secret_keys.destroyed_at, now());
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER secret_keys_shred
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION secret_keys_shred();
