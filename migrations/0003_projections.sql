-- Read models. Each subscription keeps its place in the global order here,
-- updated in the same transaction as its rows.
CREATE TABLE subscription_checkpoints
(
    name           text PRIMARY KEY,
    transaction_id xid8        NOT NULL DEFAULT '0',
    position       bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE usecase_view
(
    id            uuid PRIMARY KEY,
    -- The registration event's position: listing order, stable across rebuilds.
    registered_at_position bigint NOT NULL UNIQUE,
    name          text        NOT NULL,
    description   text        NOT NULL,
    created_at    timestamptz NOT NULL,
    created_by    text        NOT NULL,
    has_succeeded boolean     NOT NULL DEFAULT false,
    updated_at    timestamptz NOT NULL,
    updated_by    text        NOT NULL
);

CREATE TABLE deployment_view
(
    id                 uuid PRIMARY KEY,
    usecase_id         uuid        NOT NULL,
    ordinal            integer     NOT NULL,
    status             text        NOT NULL,
    created_at         timestamptz NOT NULL,
    message            text        NOT NULL DEFAULT '',
    config             jsonb       NOT NULL,
    requested_by       text        NOT NULL,
    updated_at         timestamptz NOT NULL,
    updated_by         text        NOT NULL,
    undeploy_requested boolean     NOT NULL DEFAULT false,
    superseded_by      uuid,
    UNIQUE (usecase_id, ordinal)
);
