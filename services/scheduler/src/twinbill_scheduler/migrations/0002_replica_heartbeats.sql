-- Replicas say they are alive; only a silent replica's unconfirmed fires are taken over.
-- depends: 0001_tasks_and_fires

CREATE TABLE replicas (
    replica_id text PRIMARY KEY,
    seen_at    timestamptz NOT NULL
);
