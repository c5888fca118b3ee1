"""twinbill billing worker: bills in MongoDB and the seed-000 history API."""
