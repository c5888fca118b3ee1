"""Simulated EnOS gateways and meters reporting over MQTT."""
