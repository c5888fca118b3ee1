"""The campaign's own PostgreSQL, 3-node RabbitMQ cluster, Mosquitto and MongoDB.

Nothing here touches the machine's shared instances (5432, 5672, 1883, 27017, epmd on 4369):
every process gets a free port and a data directory under the campaign's work directory, the
RabbitMQ nodes talk through an epmd of their own, and `stop()` ends exactly the processes started
here (by their pids).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import secrets
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from twinbill_devstack.broker import DevBroker
from twinbill_devstack.mongo import start_embedded_mongo
from twinbill_devstack.ports import free_port, port_open

RABBIT_BIN = Path("/usr/lib/rabbitmq/bin")


def wait_port(port: int, *, timeout: float, what: str, up: bool = True) -> None:
    """Wait until 127.0.0.1:port accepts connections (or stops accepting, up=False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open("127.0.0.1", port, timeout=0.3) == up:
            return
        time.sleep(0.1)
    raise RuntimeError(f"{what}: port {port} still {'closed' if up else 'open'} after {timeout}s")


def _pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
    return Path(found[-1]).parent


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run its tools as the `postgres` user when we are root."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *argv]
    return argv


@dataclass
class Postgres:
    """A private PostgreSQL cluster (initdb into the work directory, pg_ctl start/stop)."""

    directory: Path
    port: int = field(default_factory=free_port)

    @property
    def data(self) -> Path:
        return self.directory / "data"

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _chown(self, path: Path) -> None:
        if os.geteuid() == 0:
            shutil.chown(path, "postgres", "postgres")

    def init(self) -> None:
        """initdb (trust auth, UTF-8) with settings fit for a small test cluster."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self._chown(self.directory)
        done = subprocess.run(_as_postgres([str(_pg_bin() / "initdb"), "-D", str(self.data), "-A", "trust", "-U",
                                            "postgres", "-E", "UTF8", "--no-sync"]), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                       f"unix_socket_directories = '{self.directory}'\nmax_connections = 200\n"
                       "shared_buffers = 64MB\nfsync = on\nlog_min_messages = warning\n")

    def start(self, timeout: float = 60.0) -> None:
        """pg_ctl start and wait until it accepts connections."""
        done = subprocess.run(_as_postgres([str(_pg_bin() / "pg_ctl"), "-D", str(self.data), "-l",
                                            str(self.directory / "postgres.log"), "-w", "-t", str(int(timeout)),
                                            "start"]), capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout.strip()} {done.stderr.strip()}")
        wait_port(self.port, timeout=timeout, what="postgres")

    def stop(self, mode: str = "fast") -> None:
        """pg_ctl stop -m mode (immediate: no checkpoint, crash recovery at the next start)."""
        if (self.data / "postmaster.pid").exists():
            subprocess.run(_as_postgres([str(_pg_bin() / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                                         "stop"]), check=False, capture_output=True)

    def make_tablespace_dir(self, path: Path) -> None:
        """A directory PostgreSQL may use as a tablespace location."""
        path.mkdir(parents=True, exist_ok=True)
        self._chown(path)


@dataclass
class RabbitNode:
    """One node of the private cluster: its name, ports, and the beam process once running."""

    index: int
    name: str
    amqp_port: int
    dist_port: int
    process: subprocess.Popen[bytes] | None = None


class RabbitCluster:
    """Three RabbitMQ nodes forming one cluster by classic peer discovery, with their own epmd and
    Erlang cookie, started and stopped by pid (never the machine's rabbit@localhost)."""

    def __init__(self, directory: Path, *, nodes: int = 3, tag: str = "") -> None:
        self.directory = directory
        self.tag = tag or secrets.token_hex(3)
        self.epmd_port = free_port()
        self.home = directory / "home"
        self.nodes = [RabbitNode(i, f"faults{self.tag}n{i}@localhost", free_port(), free_port())
                      for i in range(1, nodes + 1)]
        self._epmd: subprocess.Popen[bytes] | None = None

    def _env(self) -> dict[str, str]:
        return {**os.environ, "HOME": str(self.home), "ERL_EPMD_PORT": str(self.epmd_port),
                "ERL_EPMD_ADDRESS": "127.0.0.1",
                "RABBITMQ_CONF_ENV_FILE": str(self.directory / "rabbitmq-env.conf")}

    def _node_env(self, node: RabbitNode) -> dict[str, str]:
        base = self.directory / f"n{node.index}"
        return {**self._env(), "RABBITMQ_NODENAME": node.name, "RABBITMQ_NODE_PORT": str(node.amqp_port),
                "RABBITMQ_DIST_PORT": str(node.dist_port), "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
                "RABBITMQ_LOG_BASE": str(base / "log"), "RABBITMQ_PID_FILE": str(base / "pid"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.directory / "enabled_plugins"),
                "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq.conf"),
                # No scheduler busy-waiting: three nodes share a small machine with everything
                # else the campaign runs, and spinning schedulers took CPU the others (and the
                # nodes' own boot) needed.
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "+sbwt none +sbwtdcpu none +sbwtdio none"}

    def prepare(self) -> None:
        """Cookie, env file, plugins file and each node's configuration."""
        self.home.mkdir(parents=True, exist_ok=True)
        cookie = self.home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        (self.directory / "rabbitmq-env.conf").write_text("# the campaign's nodes: no machine-wide settings\n")
        (self.directory / "enabled_plugins").write_text("[].\n")
        peers = "".join(f"cluster_formation.classic_config.nodes.{n.index} = {n.name}\n" for n in self.nodes)
        for node in self.nodes:
            base = self.directory / f"n{node.index}"
            base.mkdir(parents=True, exist_ok=True)
            (base / "rabbitmq.conf").write_text(
                f"listeners.tcp.default = 127.0.0.1:{node.amqp_port}\nloopback_users = none\n"
                "cluster_formation.peer_discovery_backend = classic_config\n" + peers +
                "cluster_partition_handling = pause_minority\ndisk_free_limit.absolute = 100MB\n"
                "log.console = false\nlog.file.level = warning\n")

    def start_epmd(self) -> None:
        """An epmd of our own on a free port, as a child we can stop."""
        epmd = shutil.which("epmd") or "/usr/bin/epmd"
        self._epmd = subprocess.Popen([epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        wait_port(self.epmd_port, timeout=10, what="epmd")

    def start_node(self, node: RabbitNode) -> None:
        """Launch one node (returns at once; see await_node)."""
        log = (self.directory / f"n{node.index}" / "stdout.log").open("ab")
        node.process = subprocess.Popen([str(RABBIT_BIN / "rabbitmq-server")], env=self._node_env(node),
                                        stdout=log, stderr=log, start_new_session=True, cwd=log.name.rsplit("/", 1)[0])

    def ctl(self, node: RabbitNode, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        """rabbitmqctl -n <node> ... against our node, with our cookie and epmd."""
        return subprocess.run([str(RABBIT_BIN / "rabbitmqctl"), "-n", node.name, *args],
                              env=self._env(), capture_output=True, text=True, timeout=timeout, check=False)

    def await_node(self, node: RabbitNode, *, timeout: float = 180.0) -> None:
        """Wait until the node has booted and listens for AMQP."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if node.process is not None and node.process.poll() is not None:
                raise RuntimeError(f"rabbit node {node.name} exited with {node.process.returncode}")
            if port_open("127.0.0.1", node.amqp_port, timeout=0.3):
                return
            time.sleep(0.2)
        raise RuntimeError(f"rabbit node {node.name} did not listen on {node.amqp_port} within {timeout}s")

    def start(self) -> None:
        """Start every node at once and wait until all three run as one cluster."""
        self.prepare()
        self.start_epmd()
        for node in self.nodes:
            self.start_node(node)
        for node in self.nodes:
            self.await_node(node)
        done = self.ctl(self.nodes[0], "await_online_nodes", str(len(self.nodes)), "--timeout", "120", timeout=150)
        if done.returncode != 0:
            raise RuntimeError(f"the rabbit nodes did not form one cluster: {done.stderr.strip()}")

    def leader_of(self, queue: str) -> RabbitNode | None:
        """The node leading a quorum queue, as a running node reports it (None if none says)."""
        for node in self.nodes:
            if not self.alive(node):
                continue
            try:  # the CLI boots an Erlang VM: slow on a loaded machine
                listed = self.ctl(node, "list_queues", "name", "leader", "--quiet", "--no-table-headers",
                                  timeout=120)
            except subprocess.TimeoutExpired:
                continue
            for line in listed.stdout.splitlines():
                name, _, leader = line.strip().partition("\t")
                if name == queue:
                    return next((n for n in self.nodes if n.name == leader.strip()), None)
        return None

    def alive(self, node: RabbitNode) -> bool:
        return node.process is not None and node.process.poll() is None

    def _signal(self, node: RabbitNode, sig: int) -> None:
        """Signal the node's whole process group: the rabbitmq-server script runs the Erlang VM as
        its child, so signalling the script alone would leave the VM (and the node) running."""
        if node.process is not None and node.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node.process.pid, sig)

    def _gone(self, node: RabbitNode, *, timeout: float) -> None:
        """Wait until the node no longer listens for AMQP or distribution."""
        wait_port(node.amqp_port, timeout=timeout, what=node.name, up=False)
        wait_port(node.dist_port, timeout=timeout, what=node.name, up=False)

    def kill(self, node: RabbitNode) -> None:
        """kill -9 the node's VM (and the script that started it)."""
        self._signal(node, signal.SIGKILL)
        if node.process is not None:
            node.process.wait()
        self._gone(node, timeout=15)

    def terminate(self, node: RabbitNode, *, timeout: float = 60.0) -> None:
        """A clean stop (SIGTERM makes the Erlang VM shut down in order); kill -9 after timeout."""
        self._signal(node, signal.SIGTERM)
        if node.process is not None:
            try:
                node.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._signal(node, signal.SIGKILL)
                node.process.wait()
        try:
            self._gone(node, timeout=timeout)
        except RuntimeError:
            self._signal(node, signal.SIGKILL)
            self._gone(node, timeout=15)

    def stop(self) -> None:
        """Stop every node and our epmd."""
        for node in self.nodes:
            with contextlib.suppress(OSError, RuntimeError):
                self.kill(node)
        if self._epmd is not None and self._epmd.poll() is None:
            self._epmd.kill()
            self._epmd.wait()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        """Live processes started for this cluster (their environment names our epmd port): a VM or
        an epmd a node started by itself. Only ours: the port is unique to this cluster."""
        marker = f"ERL_EPMD_PORT={self.epmd_port}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                if marker in (entry / "environ").read_bytes().split(b"\0") and \
                        (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry.name))
            except OSError:
                continue
        return found


class Mongo:
    """A private nx-27017 on a free port, restartable on the same port and data."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = start_embedded_mongo(data_dir=self.directory, port=self.port,
                                            log_file=self.directory / "nx-27017.log")

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None and self.process.poll() is None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        wait_port(self.port, timeout=15, what="nx-27017", up=False)


class SmallDisk:
    """A size-limited tmpfs for the time-series tablespace, and ballast to fill it."""

    def __init__(self, path: Path, *, size_mb: int) -> None:
        self.path = path
        self.size_mb = size_mb
        self.mounted = False
        self.ballast = path / "ballast"

    def mount(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.size_mb}m,mode=0755", "tmpfs",
                        str(self.path)], check=True, capture_output=True)
        self.mounted = True

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, *, leave: int) -> None:
        """Take all free space but about `leave` bytes. PostgreSQL goes on writing meanwhile, so
        an allocation that no longer fits is tried again with what is free by then."""
        with self.ballast.open("wb") as handle:
            for _ in range(20):
                size = max(0, os.fstat(handle.fileno()).st_size + self.free_bytes() - leave)
                try:
                    os.posix_fallocate(handle.fileno(), 0, size)
                    return
                except OSError as err:
                    if err.errno != errno.ENOSPC:
                        raise
                    leave += 256 * 1024
            raise RuntimeError(f"could not fill {self.path}: the free space kept shrinking")

    def release(self) -> None:
        self.ballast.unlink(missing_ok=True)

    def unmount(self) -> None:
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.path)], check=False, capture_output=True)
            self.mounted = False


__all__ = ["DevBroker", "Mongo", "Postgres", "RabbitCluster", "RabbitNode", "SmallDisk", "wait_port"]
