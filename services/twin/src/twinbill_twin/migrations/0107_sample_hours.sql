-- Issue 16 (query speed): each sealed hour's raw points of one series packed into one row, so an
-- hour of 1 Hz points reads one row instead of 3,600 samples (the index scan, the arrays and the
-- doubles' text were two thirds of a raw hour's answer). Built from the samples when the hour is
-- sealed (the same marks as values_1h and rollup_1m_hours: store/samples.py SEAL_HOURS, which
-- since this migration marks an hour for text points too); only hours whose every point is a
-- number are packed (a text point sends the whole hour to the samples), and readers take an hour
-- from here only while it is unmarked (store/sample_hours.py), else from the samples, which stay
-- the points of record. Raw-grade: partitioned by month like the samples, retention drops and
-- deletes it with them.
-- `first_ts`, `last_ts`, `n`: the first and last point's time and how many (an hour at either end of
-- a range is read from here when it holds no point outside it); the times themselves as `step`
-- when they lie one step apart (first_ts, first_ts + step, ..., last_ts: a 1 Hz meter's hour),
-- else as `ts`, ascending; `dbl` the doubles in time order, each as the text PostgreSQL writes of
-- it (the answers' text: domain/floattext.py; extra_float_digits 1, shortest exact), comma-
-- separated, so a read joins texts and formats no double; `millis` whether a time is not on a
-- whole second (the answer's keys then are milliseconds).
-- depends: 0106_minute_hours

CREATE TABLE sample_hours (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- the hour's start, epoch ms
    first_ts     bigint   NOT NULL,
    last_ts      bigint   NOT NULL,
    n            integer  NOT NULL,
    step         bigint,                       -- the times one step apart, or
    ts           bigint[],                     -- the times (NULL when `step` says them)
    dbl          text     NOT NULL,
    millis       boolean  NOT NULL,
    PRIMARY KEY (attribute_id, bucket, idx),
    CHECK ((step IS NULL) <> (ts IS NULL))
) PARTITION BY RANGE (bucket);
ALTER TABLE sample_hours ALTER COLUMN ts SET STORAGE EXTERNAL;  -- times barely compress; reads skip the inflate

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'samples'::regclass
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF sample_hours %s',
                       replace(part.relname, 'samples_', 'sample_hours_'), part.bound);
    END LOOP;
END $$;

SET extra_float_digits = 1;  -- the texts every pooled connection writes (twinbill_common.postgres)

-- The hours already sealed (not marked) whose every point is a number: packed now, so existing
-- data reads the same way (the statement store/sample_hours.py PACK_SAMPLES runs at each seal).
INSERT INTO sample_hours (attribute_id, idx, bucket, first_ts, last_ts, n, step, ts, dbl, millis)
SELECT attribute_id, idx, bucket, first_ts, last_ts, n, step, CASE WHEN step IS NULL THEN ts END, dbl, millis
FROM (SELECT attribute_id, idx, bucket, min(ts) AS first_ts, max(ts) AS last_ts, count(*) AS n,
             CASE WHEN count(*) = 1 THEN 1 WHEN (count(*) - 1) * min(gap) = max(ts) - min(ts) THEN min(gap) END AS step,
             array_agg(ts ORDER BY ts) AS ts, string_agg(dbl::text, ',' ORDER BY ts) AS dbl,
             bool_or(ts % 1000 <> 0) AS millis,
             bool_and(bool_and(dbl IS NOT NULL)) OVER (PARTITION BY attribute_id, bucket) AS numbers
      FROM (SELECT s.attribute_id, s.idx, s.ts - s.ts % 3600000 AS bucket, s.ts, s.dbl,
                   s.ts - lag(s.ts) OVER (PARTITION BY s.attribute_id, s.idx, s.ts - s.ts % 3600000 ORDER BY s.ts) AS gap
            FROM samples AS s
            WHERE NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = s.attribute_id
                              AND d.bucket = s.ts - s.ts % 3600000)) AS points
      GROUP BY 1, 2, 3) AS hour_rows
WHERE numbers;
