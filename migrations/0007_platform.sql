-- Seed 002's platform API on the same usecases: the template a usecase was
-- created from, its visibility, its auto-update settings and a pending deletion
-- are kept on its row; deployments are addressed by name, hence the index.
ALTER TABLE usecase_view
    ADD COLUMN template             text,
    ADD COLUMN visibility           text,
    ADD COLUMN auto_update_enabled  boolean NOT NULL DEFAULT false,
    ADD COLUMN auto_update_strategy text    NOT NULL DEFAULT 'rolling',
    ADD COLUMN deletion_requested   boolean NOT NULL DEFAULT false;

CREATE INDEX usecase_view_by_name ON usecase_view (name);

-- The newest deployment of a usecase and its deployed one are read for every
-- platform listing; both walk this index instead of the usecase's whole history.
CREATE INDEX deployment_view_by_status ON deployment_view (usecase_id, status, ordinal);
