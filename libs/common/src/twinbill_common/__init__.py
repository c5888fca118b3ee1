"""Shared code of the twinbill services: settings, logging, metrics, bus, HTTP envelopes, errors."""
