"""Start a private Mosquitto from the project's configuration (deploy/mosquitto) on a free port,
for tests and benches: the system broker on 1883 is left alone. Its acl is rendered as in
production (brokerauth.render_acl) from the gateway topology the caller adds."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from twinbill_devstack.ports import free_port
from twinbill_ingest.brokerauth import render_acl

DEPLOY = Path(__file__).resolve().parents[4] / "deploy" / "mosquitto"
SERVICE_USER = "twinbill-ingest"  # the same as brokerauth.SERVICE_USER


class DevBroker:
    """A Mosquitto process with the project's mosquitto.conf and acl, users added on the fly."""

    def __init__(self, directory: Path, *, auth: bool = True, certs: Path | None = None) -> None:
        """`certs`: a folder with tls.crt and tls.key (deploy/mosquitto/make-certs.sh): the broker
        also listens with TLS, as deploy/mosquitto/tls.conf says, on `tls_port`."""
        self.directory = directory
        self.auth = auth
        self.port = free_port()
        self.certs = certs
        self.tls_port = free_port() if certs is not None else None
        self.passwd = directory / "passwd"
        self.acl = directory / "acl"
        self.sub_devices: dict[str, set[str]] = {}
        self.service_password = os.urandom(8).hex()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> DevBroker:
        """Write the configuration, start mosquitto and wait until it accepts connections."""
        conf = (DEPLOY / "mosquitto.conf").read_text()
        conf = conf.replace("listener 1883", f"listener {self.port} 127.0.0.1")
        conf = conf.replace("/etc/mosquitto/twinbill/passwd", str(self.passwd))
        conf = conf.replace("/etc/mosquitto/twinbill/acl", str(self.acl))
        if not self.auth:
            conf = "\n".join(
                line
                for line in conf.splitlines()
                if not line.startswith(("password_file", "acl_file", "allow_anonymous"))
            )
            conf += "\nallow_anonymous true\n"
        if self.certs is not None:
            tls = (DEPLOY / "tls.conf").read_text().replace("listener 8883", f"listener {self.tls_port} 127.0.0.1")
            conf += "\n" + tls.replace("/mosquitto/certs", str(self.certs))
        if os.geteuid() == 0:  # mosquitto would drop to user "mosquitto", who cannot read tmp files
            conf += "\nuser root\n"
        (self.directory / "mosquitto.conf").write_text(conf)
        self.passwd.write_text("")
        self._passwd_add(SERVICE_USER, self.service_password)
        self._write_acl()
        return self._launch(timeout)

    def restart(self, timeout: float = 10.0) -> DevBroker:
        """Stop the broker (if it runs) and start it again on the same port with the same users
        (no persistence: sessions and retained messages are gone, as after a real crash)."""
        self.stop()
        return self._launch(timeout)

    def _launch(self, timeout: float) -> DevBroker:
        mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self._process = subprocess.Popen(  # noqa: S603  # fixed argv: the mosquitto binary and our config
            [mosquitto, "-c", str(self.directory / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=(self.directory / "mosquitto.log").open("ab"),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
                return self
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {(self.directory / 'mosquitto.log').read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port}")

    def _passwd_add(self, username: str, password: str) -> None:
        tool = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
        argv = [tool, "-b", str(self.passwd), username, password]
        subprocess.run(argv, check=True, capture_output=True)  # noqa: S603  # fixed argv, no shell

    def _write_acl(self) -> None:
        self.acl.write_text(render_acl(self.sub_devices, service_user=SERVICE_USER))

    def add_users(self, users: Mapping[str, str], *,
                  sub_devices: Mapping[str, Iterable[str]] | None = None) -> None:
        """Add users (username -> password) and gateways' sub-devices (gateway username ->
        sub-device usernames, for reverse control), and make mosquitto reload both files."""
        for username, password in users.items():
            self._passwd_add(username, password)
        for gateway, devices in (sub_devices or {}).items():
            self.sub_devices.setdefault(gateway, set()).update(devices)
        self._write_acl()
        self.reload()

    def reload(self) -> None:
        """Make mosquitto read its password file and acl again (SIGHUP)."""
        if self._process is not None:
            self._process.send_signal(signal.SIGHUP)

    @property
    def pid(self) -> int:
        """The mosquitto process id."""
        assert self._process is not None, "start() first"
        return self._process.pid

    def stop(self) -> None:
        """Stop the broker."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
