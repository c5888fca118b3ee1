"""Pure billing rules: periods and local time, usage and rollover, tariff pricing. No I/O, no clock."""
