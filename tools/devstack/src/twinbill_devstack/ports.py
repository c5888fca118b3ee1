"""Local TCP ports for development and tests: is something listening, which one is free."""

from __future__ import annotations

import os
import socket


def port_open(host: str, port: int, *, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# Ports this process has handed out, oldest first: a port is chosen before whatever will listen
# on it starts, so two calls in a row must not return the same one (a RabbitMQ node once got its
# epmd's port). A range used up is handed out again from its oldest port that is free by then.
_HANDED_OUT: dict[int, None] = {}
# TWINBILL_PORT_RANGE=18100-18199: hand out ports from this range only (a developer on a shared
# machine keeps what they start inside the range they were given); unset: the kernel's choice.
PORT_RANGE_ENV = "TWINBILL_PORT_RANGE"


def _bindable(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return not port_open("127.0.0.1", port, timeout=0.2)


def free_port() -> int:
    """An unused local TCP port, never one this process handed out before."""
    spec = os.environ.get(PORT_RANGE_ENV, "").strip()
    if spec:
        low, _, high = spec.partition("-")
        for port in range(int(low), int(high or low) + 1):
            if port not in _HANDED_OUT and _bindable(port):
                _HANDED_OUT[port] = None
                return port
        for port in list(_HANDED_OUT):  # oldest first: long since bound and, if free now, closed
            if int(low) <= port <= int(high or low) and _bindable(port):
                del _HANDED_OUT[port]
                _HANDED_OUT[port] = None
                return port
        raise RuntimeError(f"no free port left in {PORT_RANGE_ENV}={spec}")
    for _ in range(100):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT[port] = None
            return port
    raise RuntimeError("the kernel kept offering ports this process already handed out")
