-- Time series of attributes: raw samples (partitioned by month of device time) and rollups per
-- minute and per hour, merged as data arrives (late data included).
-- A series is (attribute_id, idx): idx -1 for a scalar, 0.. for the elements of an array.
-- Times are epoch milliseconds (bigint): bucket arithmetic stays exact integer maths.
-- depends: 0001_registry_core

CREATE TABLE samples (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL DEFAULT -1,
    ts           bigint   NOT NULL,            -- device time, epoch ms
    num          numeric,                      -- the exact decimal (billing reads this)
    dbl          double precision,             -- the same value for aggregation
    txt          text,                         -- non-numeric values (string, bool)
    quality      text,                         -- a struct measurepoint's quality, beside its value
    PRIMARY KEY (attribute_id, idx, ts)
) PARTITION BY RANGE (ts);

-- Rollups: n, sum, m2 (sum of squared deviations from the mean: what dev needs, merged with
-- Chan's formula so it stays exact-ish where sum-of-squares would cancel), min, max, first, last.
CREATE TABLE rollup_1m (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- bucket start, epoch ms, multiple of 60 000
    n            bigint   NOT NULL,
    sum          double precision NOT NULL,
    m2           double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    first_ts     bigint   NOT NULL,
    first_v      double precision NOT NULL,
    last_ts      bigint   NOT NULL,
    last_v       double precision NOT NULL,
    PRIMARY KEY (attribute_id, idx, bucket)
) PARTITION BY RANGE (bucket);

CREATE TABLE rollup_1h (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- multiple of 3 600 000
    n            bigint   NOT NULL,
    sum          double precision NOT NULL,
    m2           double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    first_ts     bigint   NOT NULL,
    first_v      double precision NOT NULL,
    last_ts      bigint   NOT NULL,
    last_v       double precision NOT NULL,
    PRIMARY KEY (attribute_id, idx, bucket)
);
