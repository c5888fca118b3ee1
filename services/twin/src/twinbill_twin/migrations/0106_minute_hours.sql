-- Issue 12/16 (query speed): each sealed hour's minute partials of one series packed into one row
-- of arrays, so a week of one-minute buckets reads 168 rows instead of 10,080 rollup_1m rows.
-- Built from rollup_1m when the hour is sealed (the same marks as values_1h: store/samples.py
-- SEAL_HOURS); readers take an hour from here only while it is unmarked and packed whole (60
-- minutes), else from rollup_1m, which stays the minute rollup of record. Minute-grade: raw
-- retention keeps it, like rollup_1m. Only the values a bucket of one minute answers as stored:
-- `mean` is sum / n computed once (the same IEEE division as at read time), so answers do not
-- change; `mean15` is that mean to 15 significant digits, what seed 002 writes for an average
-- (float8 -> numeric writes `%.15g`; numeric -> float8 reads it back: Python's
-- float(f"{mean:.15g}")), so its answer takes PostgreSQL's text of it without a fix-up per
-- value (api/dps.py). Not partitioned: one row per series and hour, like rollup_1h.
-- depends: 0104_hour_values_sealed

CREATE TABLE rollup_1m_hours (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- the hour's start, epoch ms
    minute       smallint[] NOT NULL,          -- the minutes (0..59) holding points, ascending
    n            bigint[] NOT NULL,            -- then each minute's partials, in that order
    sum          double precision[] NOT NULL,
    mean         double precision[] NOT NULL,
    mean15       double precision[] NOT NULL,
    min          double precision[] NOT NULL,
    max          double precision[] NOT NULL,
    first_v      double precision[] NOT NULL,
    last_v       double precision[] NOT NULL,
    PRIMARY KEY (attribute_id, bucket, idx)
);

-- The hours already sealed (not marked): packed now, so existing data reads the same way.
INSERT INTO rollup_1m_hours (attribute_id, idx, bucket, minute, n, sum, mean, mean15, min, max, first_v, last_v)
SELECT r.attribute_id, r.idx, r.bucket - r.bucket % 3600000,
       array_agg((r.bucket % 3600000 / 60000)::smallint ORDER BY r.bucket), array_agg(r.n ORDER BY r.bucket),
       array_agg(r.sum ORDER BY r.bucket), array_agg(r.sum / r.n ORDER BY r.bucket),
       array_agg(CASE WHEN abs(r.sum / r.n) BETWEEN 1e-300::float8 AND 1e300::float8
                      THEN (r.sum / r.n)::numeric::float8 ELSE r.sum / r.n END ORDER BY r.bucket),
       array_agg(r.min ORDER BY r.bucket), array_agg(r.max ORDER BY r.bucket),
       array_agg(r.first_v ORDER BY r.bucket), array_agg(r.last_v ORDER BY r.bucket)
FROM rollup_1m AS r
WHERE NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = r.attribute_id
                  AND d.bucket = r.bucket - r.bucket % 3600000)
GROUP BY 1, 2, 3;
