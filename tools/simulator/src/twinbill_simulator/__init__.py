"""Simulated EnOS gateways and meters reporting over MQTT (see run.run_simulator)."""

from twinbill_simulator.run import SimulatorStats, run_simulator

__all__ = ["SimulatorStats", "run_simulator"]
