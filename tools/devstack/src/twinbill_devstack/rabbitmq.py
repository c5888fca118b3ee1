"""A private RabbitMQ node for restart tests and the fault campaign: its own node name, ports,
data and log directories under one temporary directory, so the machine's broker on 5672 (which
other test runs share) is never stopped, restarted or reconfigured.

The node keeps its data across `restart()` (durable quorum queues and persistent messages survive,
as on a real restart); `kill()` is a crash (kill -9) and `stop()` a clean shutdown (SIGTERM).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

# The packaged start script: /usr/sbin/rabbitmq-server is a wrapper that drops root to the
# "rabbitmq" user, who cannot write the temporary directory.
SERVER_SCRIPTS = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_script() -> str:
    for candidate in SERVER_SCRIPTS:
        found = shutil.which(candidate) if "/" not in candidate else candidate
        if found and Path(found).exists():
            return found
    raise RuntimeError("rabbitmq-server is not installed")


class PrivateRabbitMQ:
    """One RabbitMQ node of our own: `start()`, `stop()`, `kill()`, `restart()`, `url`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"twb{uuid.uuid4().hex[:8]}@localhost"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of this node (guest may log in from anywhere: loopback_users = none)."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _environment(self) -> dict[str, str]:
        base = self.directory
        return {
            **os.environ,
            "HOME": str(base),  # the Erlang cookie is created here
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        }

    def start(self, timeout: float = 60.0) -> PrivateRabbitMQ:
        """Write the configuration (no plugins, so no management listener) and start the node;
        return once it accepts AMQP connections."""
        (self.directory / "mnesia").mkdir(parents=True, exist_ok=True)
        (self.directory / "log").mkdir(parents=True, exist_ok=True)
        (self.directory / "enabled_plugins").write_text("[].\n")
        (self.directory / "rabbitmq.conf").write_text("loopback_users = none\n")
        self._process = subprocess.Popen(  # noqa: S603  # fixed argv: the packaged start script
            [_server_script()],
            env=self._environment(),
            stdout=(self.directory / "server.out").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so stop/kill reach beam and helpers
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = (self.directory / "server.out").read_text()[-2000:]
                raise RuntimeError(f"rabbitmq-server exited with {self._process.returncode}: {tail}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            time.sleep(0.1)
        self.kill()
        raise RuntimeError(f"RabbitMQ node {self.node} did not listen on {self.port} within {timeout}s")

    def _signal(self, signum: int) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self._process.pid, signum)

    def stop(self, timeout: float = 30.0) -> None:
        """A clean shutdown (SIGTERM to the node's process group); kill -9 if it takes too long."""
        if self._process is None:
            return
        self._signal(signal.SIGTERM)
        try:
            self._process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
        self._wait_port_closed(timeout)

    def kill(self) -> None:
        """A crash: kill -9 of the node's process group."""
        if self._process is None:
            return
        self._signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=10)
        self._wait_port_closed(10.0)

    def restart(self, timeout: float = 60.0) -> PrivateRabbitMQ:
        """Stop cleanly and start again on the same ports with the same data."""
        self.stop()
        return self.start(timeout)

    def _wait_port_closed(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), 0.2):
                    pass
            except OSError:
                return
            time.sleep(0.1)
