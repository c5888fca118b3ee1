-- Raw retention per project (issue 16): raw-grade data (samples, the 10 s rollup, the hours'
-- sorted values) older than a project's horizon is deleted by the service's maintenance loop,
-- while the minute and hour rollups stay. `raw_kept_from` is the horizon last applied (epoch
-- ms, a whole hour): queries that need raw-grade data before it say so instead of answering
-- from what is left.
-- depends: 0102_timeseries_rollup_10s_hour_values 0200_bemserver

CREATE TABLE ts_retention (
    project_id    integer PRIMARY KEY REFERENCES projects (id) ON DELETE CASCADE,
    raw_days      integer CHECK (raw_days >= 1),         -- NULL: the service's default
    raw_kept_from bigint  NOT NULL DEFAULT 0             -- raw-grade data before this is gone
);

-- The project of every sample key: a device attribute's, or a BEMServer series' (Raw and Clean).
CREATE VIEW series_projects AS
    SELECT a.id AS series_key, d.project_id
    FROM attributes a JOIN instances i ON i.id = a.instance_id JOIN devices d ON d.id = i.device_id
    UNION ALL
    SELECT raw_key, campaign_id FROM bem_timeseries
    UNION ALL
    SELECT clean_key, campaign_id FROM bem_timeseries;
