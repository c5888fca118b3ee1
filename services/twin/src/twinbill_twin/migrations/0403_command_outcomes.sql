-- What became of a State attribute's desired value (issue 13): pending once set, then applied,
-- refused (with the device's code and message) or expired, from the ingest gateway's
-- CommandOutcome; shown by seed 002 after its own fields (expectstatus, expectcode, ...).
-- depends: 0402_webhooks

ALTER TABLE attributes
    ADD COLUMN expect_status    text CHECK (expect_status IN ('pending', 'applied', 'refused', 'expired')),
    ADD COLUMN expect_code      integer,
    ADD COLUMN expect_message   text,
    ADD COLUMN expect_status_at timestamptz;
