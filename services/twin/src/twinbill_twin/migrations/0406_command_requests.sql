-- Which command last set a State attribute's desired value: the SetMeasurepoints message id, which
-- the ingest gateway sends to the device as the set request's `id` and the device echoes in its
-- set_reply. An outcome is recorded by it alone, so a reply that reaches a gateway replica that
-- does not remember the request (one restarted since, or another replica) still marks the
-- attributes it answers, and only those: a later command on an attribute replaces its request.
-- depends: 0420_alarm_shards

ALTER TABLE attributes ADD COLUMN expect_request text;
CREATE INDEX attributes_by_expect_request ON attributes (expect_request) WHERE expect_request IS NOT NULL;
