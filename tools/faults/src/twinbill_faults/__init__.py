"""The fault campaign of issue 17: `make faults`."""
