"""Pure scheduling rules: crontab parsing, fire-time arithmetic, paging. No I/O, no clock."""
