-- Time travel (`?at=`) folds only the events that decide a usecase's rows at an
-- instant; these indexes find each of them in a few page reads, however long the
-- usecase's history:
-- - its last event at or before an instant;
CREATE INDEX events_by_usecase_time ON events (aggregate_id, recorded_at, sequence);
-- - its latest event of a type, and how many deployments it requested up to an event;
CREATE INDEX events_by_usecase_type ON events (aggregate_id, event_type, sequence);
-- - the events that name one deployment (every payload is `{"<its type>": {...}}`).
CREATE INDEX events_by_deployment
    ON events (aggregate_id, ((payload -> event_type) ->> 'deploymentId'), sequence);
