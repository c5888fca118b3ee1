-- Queries ask for one attribute over a time range, whatever its series index: key the samples
-- and rollups (attribute, time, index) so that range is one index range (with the index in the
-- middle, a wide attribute's range turned into a sequential scan).
-- depends: 0100_timeseries

ALTER TABLE samples DROP CONSTRAINT samples_pkey;
ALTER TABLE samples ADD PRIMARY KEY (attribute_id, ts, idx);

ALTER TABLE rollup_1m DROP CONSTRAINT rollup_1m_pkey;
ALTER TABLE rollup_1m ADD PRIMARY KEY (attribute_id, bucket, idx);

ALTER TABLE rollup_1h DROP CONSTRAINT rollup_1h_pkey;
ALTER TABLE rollup_1h ADD PRIMARY KEY (attribute_id, bucket, idx);
