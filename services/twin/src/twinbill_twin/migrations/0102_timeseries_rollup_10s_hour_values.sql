-- Issue 12/16 (query speed): a 10-second rollup beside the minute and hour ones (BEMServer's 10 s
-- buckets and seed 002's `10s-` downsamples read 1/10 of the rows of 1 Hz data), and each hour's
-- numeric values as one sorted array (percentiles per hour pick their order statistics from it
-- instead of sorting the raw rows). Both are merged as points arrive, like the other rollups,
-- and are exact: the arrays hold every stored value, the 10 s rows the same partials as the
-- minute rows.
-- depends: 0101_timeseries_time_first_keys

CREATE TABLE rollup_10s (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- bucket start, epoch ms, multiple of 10 000
    n            bigint   NOT NULL,
    sum          double precision NOT NULL,
    m2           double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    first_ts     bigint   NOT NULL,
    first_v      double precision NOT NULL,
    last_ts      bigint   NOT NULL,
    last_v       double precision NOT NULL,
    PRIMARY KEY (attribute_id, bucket, idx)
) PARTITION BY RANGE (bucket);

-- The numeric values of one hour of one series, sorted ascending (duplicates kept: one element
-- per stored sample). Partitioned by month like the raw samples (as large as their doubles).
CREATE TABLE values_1h (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- multiple of 3 600 000
    v            double precision[] NOT NULL,
    PRIMARY KEY (attribute_id, bucket, idx)
) PARTITION BY RANGE (bucket);
ALTER TABLE values_1h ALTER COLUMN v SET STORAGE EXTERNAL;  -- no compression: random doubles don't compress, and reads skip the inflate

-- A partition for every month the samples already have, then the existing data rolled up.
DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'samples'::regclass
    LOOP
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF rollup_10s %s',
                       replace(part.relname, 'samples_', 'rollup_10s_'), part.bound);
        EXECUTE format('CREATE TABLE IF NOT EXISTS %I PARTITION OF values_1h %s',
                       replace(part.relname, 'samples_', 'values_1h_'), part.bound);
    END LOOP;
END $$;

INSERT INTO rollup_10s (attribute_id, idx, bucket, n, sum, m2, min, max, first_ts, first_v, last_ts, last_v)
SELECT attribute_id, idx, ts - ts % 10000, count(*), sum(dbl), coalesce(var_pop(dbl), 0) * count(*),
       min(dbl), max(dbl), min(ts), (array_agg(dbl ORDER BY ts))[1], max(ts), (array_agg(dbl ORDER BY ts DESC))[1]
FROM samples WHERE dbl IS NOT NULL GROUP BY 1, 2, 3;

INSERT INTO values_1h (attribute_id, idx, bucket, v)
SELECT attribute_id, idx, ts - ts % 3600000, array_agg(dbl ORDER BY dbl)
FROM samples WHERE dbl IS NOT NULL GROUP BY 1, 2, 3;
