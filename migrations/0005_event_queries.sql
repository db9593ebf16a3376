-- Indexes for the audit trail (GET /api/events, a usecase's history and event
-- streams). Each filter walks its own index in the global order
-- (transaction_id, position), so a page costs the same at any size of the ledger.
CREATE INDEX events_by_usecase ON events (aggregate_id, transaction_id, position);
CREATE INDEX events_by_type ON events (event_type, transaction_id, position);
CREATE INDEX events_by_actor ON events ((metadata ->> 'actor'), transaction_id, position);
CREATE INDEX events_by_time ON events (recorded_at);
