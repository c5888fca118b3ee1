-- Issue 12/16 (query speed): each sealed hour's minute partials of one series packed into one row,
-- so a week of one-minute buckets reads 168 rows instead of 10,080 rollup_1m rows. Built from
-- rollup_1m when the hour is sealed (the same marks as values_1h: store/samples.py SEAL_HOURS);
-- only hours whose every series has all 60 minutes are packed, and readers take an hour from here
-- only while it is unmarked, else from rollup_1m, which stays the minute rollup of record.
-- Minute-grade: raw retention keeps it, like rollup_1m. Not partitioned: one row per series and
-- hour, like rollup_1h.
-- Only the values a bucket of one minute answers as stored, each as the text PostgreSQL writes
-- of it (the answers' text: domain/floattext.py; extra_float_digits 1, shortest exact), comma-
-- separated in minute order, so a read joins texts and formats no double. `mean` is sum / n
-- (the same IEEE division as at read time); `mean15` that mean to 15 significant digits, what
-- seed 002 writes for an average (float8 -> numeric writes `%.15g`, numeric -> float8 reads it
-- back: Python's float(f"{mean:.15g}"); outside 1e-300..1e300 the mean as it is).
-- depends: 0104_hour_values_sealed

CREATE TABLE rollup_1m_hours (
    attribute_id bigint   NOT NULL,
    idx          smallint NOT NULL,
    bucket       bigint   NOT NULL,            -- the hour's start, epoch ms
    minute       smallint[] NOT NULL,          -- the minutes (0..59) holding points, ascending
    n            text     NOT NULL,            -- then each minute's values, in that order
    sum          text     NOT NULL,
    mean         text     NOT NULL,
    mean15       text     NOT NULL,
    min          text     NOT NULL,
    max          text     NOT NULL,
    first_v      text     NOT NULL,
    last_v       text     NOT NULL,
    PRIMARY KEY (attribute_id, bucket, idx)
);

SET extra_float_digits = 1;  -- the texts every pooled connection writes (twinbill_common.postgres)

-- The hours already sealed (not marked) whose every series has all 60 minutes (the only hours
-- readers take from here): packed now, so existing data reads the same way.
INSERT INTO rollup_1m_hours (attribute_id, idx, bucket, minute, n, sum, mean, mean15, min, max, first_v, last_v)
SELECT attribute_id, idx, hour, minute, n, sum, mean, mean15, min, max, first_v, last_v
FROM (SELECT r.attribute_id, r.idx, r.bucket - r.bucket % 3600000 AS hour,
             array_agg((r.bucket % 3600000 / 60000)::smallint ORDER BY r.bucket) AS minute,
             string_agg(r.n::text, ',' ORDER BY r.bucket) AS n, string_agg(r.sum::text, ',' ORDER BY r.bucket) AS sum,
             string_agg((r.sum / r.n)::text, ',' ORDER BY r.bucket) AS mean,
             string_agg((CASE WHEN abs(r.sum / r.n) BETWEEN 1e-300::float8 AND 1e300::float8
                              THEN (r.sum / r.n)::numeric::float8 ELSE r.sum / r.n END)::text, ','
                        ORDER BY r.bucket) AS mean15,
             string_agg(r.min::text, ',' ORDER BY r.bucket) AS min, string_agg(r.max::text, ',' ORDER BY r.bucket) AS max,
             string_agg(r.first_v::text, ',' ORDER BY r.bucket) AS first_v,
             string_agg(r.last_v::text, ',' ORDER BY r.bucket) AS last_v,
             bool_and(count(*) = 60) OVER (PARTITION BY r.attribute_id, r.bucket - r.bucket % 3600000) AS whole
      FROM rollup_1m AS r
      WHERE NOT EXISTS (SELECT FROM hour_values_dirty AS d WHERE d.attribute_id = r.attribute_id
                        AND d.bucket = r.bucket - r.bucket % 3600000)
      GROUP BY 1, 2, 3) AS hour_rows
WHERE whole;
