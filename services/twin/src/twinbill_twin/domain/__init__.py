"""Pure rules of the twin service: no I/O, no clock."""
