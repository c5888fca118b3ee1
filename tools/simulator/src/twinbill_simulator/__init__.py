"""Simulated EnOS gateways and meters reporting over MQTT (see run.run_simulator)."""

from twinbill_simulator.run import run_simulator
from twinbill_simulator.stats import SimulatorStats

__all__ = ["SimulatorStats", "run_simulator"]
