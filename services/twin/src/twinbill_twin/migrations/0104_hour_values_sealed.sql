-- The hours' sorted values (values_1h) are built once an hour is over, not merged on every
-- batch: a merge rewrote the hour's whole array (TOAST) for each batch that touched it, so a
-- 1 Hz series rewrote ~6 million values an hour and the table outgrew the samples tenfold under
-- the soak (docs/architecture.md). A batch now marks the hours it wrote (one small row per
-- series and hour, updated in place); the twin's upkeep builds each marked hour once it has
-- ended, from the samples, and drops the mark. Readers take a marked hour from the samples.
-- depends: 0103_timeseries_retention

CREATE TABLE hour_values_dirty (
    attribute_id  bigint NOT NULL,
    bucket        bigint NOT NULL,           -- the hour's start, epoch ms
    touched       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (attribute_id, bucket)
) WITH (fillfactor = 70);                   -- room for the in-place (HOT) updates of `touched`
CREATE INDEX hour_values_dirty_bucket ON hour_values_dirty (bucket);
