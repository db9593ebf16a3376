-- Tamper evidence: a hash chain over the global order of the events table.
--
-- One row per event, in (transaction_id, position) order, dense from 1. Each
-- row's hash is SHA-256(previous row's hash || the event's canonical record)
-- (exact construction: application/src/chain.rs and the README), so changing,
-- deleting or slipping in an event anywhere behind the head changes every
-- later hash. A single sealer (under an advisory lock) appends the rows; an
-- auditor who keeps a copy of the head hash can later prove that nothing
-- before it was rewritten, even by someone who can disable the triggers.
CREATE TABLE event_chain
(
    -- 1, 2, 3, ... with no gap: the event's place in the chain.
    chain_index    bigint PRIMARY KEY CHECK (chain_index >= 1),
    -- The sealed event, by its place in the global order.
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    -- The previous row's hash (32 zero bytes for chain_index 1), and this row's.
    prev_hash      bytea       NOT NULL CHECK (octet_length(prev_hash) = 32),
    hash           bytea       NOT NULL CHECK (octet_length(hash) = 32),
    sealed_at      timestamptz NOT NULL DEFAULT now(),
    -- The latest recorded_at of this event and every one before it: monotonic in
    -- chain order (recorded_at itself is not, as transactions commit out of
    -- order), so a time filter can seek to where its range can first match.
    ledger_time    timestamptz NOT NULL,
    CONSTRAINT event_chain_event UNIQUE (transaction_id, position)
);

CREATE INDEX event_chain_by_ledger_time ON event_chain (ledger_time, chain_index);

-- Append-only, like the events table: the chain is never rewritten in place.
CREATE FUNCTION event_chain_refuse_change() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    RAISE EXCEPTION 'the event_chain table is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER event_chain_append_only
    BEFORE UPDATE OR DELETE ON event_chain
    FOR EACH ROW EXECUTE FUNCTION event_chain_refuse_change();

CREATE TRIGGER event_chain_no_truncate
    BEFORE TRUNCATE ON event_chain
    FOR EACH STATEMENT EXECUTE FUNCTION event_chain_refuse_change();
