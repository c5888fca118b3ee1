-- Seed 000's tasks with their next fire time, and one row per claimed fire time.
-- depends:

CREATE TABLE tasks (
    natrual_key  text PRIMARY KEY CHECK (natrual_key ~ '^[0-9a-f]{32}$'),  -- seed 000's spelling
    name         text NOT NULL,
    project_id   integer NOT NULL,
    device_type  smallint NOT NULL,
    month        text NOT NULL,
    day          text NOT NULL,
    hour         text NOT NULL,
    minute       text NOT NULL,
    enabled      boolean NOT NULL,
    description  text NOT NULL DEFAULT '',
    timezone     text NOT NULL,                 -- the project's IANA zone the schedule runs in
    next_fire_at timestamptz,                   -- NULL while disabled
    last_run_at  timestamptz,                   -- fire time of the latest published run
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL,
    seq          bigint GENERATED ALWAYS AS IDENTITY
);

CREATE INDEX tasks_due ON tasks (next_fire_at) WHERE enabled;
CREATE INDEX tasks_listing ON tasks (project_id, device_type, create_time, seq);

-- The unique key (task, fire time) makes a second claim of the same fire impossible.
CREATE TABLE fires (
    task_key     text NOT NULL,
    fire_time    timestamptz NOT NULL,
    period_start timestamptz NOT NULL,
    project_id   integer NOT NULL,
    device_type  smallint NOT NULL,
    state        text NOT NULL CHECK (state IN ('claimed', 'published')),
    claimed_by   text NOT NULL,
    claimed_at   timestamptz NOT NULL,
    published_at timestamptz,
    attempts     integer NOT NULL DEFAULT 1,
    PRIMARY KEY (task_key, fire_time)
);

CREATE INDEX fires_pending ON fires (claimed_at) WHERE state = 'claimed';
CREATE INDEX fires_pending_task ON fires (task_key) WHERE state = 'claimed';
