"""twinbill scheduler: seed-000 task API and exactly-once fire times (PostgreSQL schema scheduler)."""
