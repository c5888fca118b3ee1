"""The broker check behind `make test` and `.ci/run`: an open port is not enough, the broker must
begin the AMQP handshake (a wedged RabbitMQ accepts TCP and never answers)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from twinbill_devstack.stack import amqp_answers


@contextmanager
def listener(answer: bytes | None) -> Iterator[int]:
    """A local server that reads the protocol header and sends `answer` (None: stays silent)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    done = threading.Event()

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            header = connection.recv(8)
            if answer is not None and header == b"AMQP\x00\x00\x09\x01":
                connection.sendall(answer)
            done.wait(5)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        done.set()
        thread.join(5)
        server.close()


def test_a_broker_that_sends_connection_start_answers() -> None:
    with listener(b"\x01\x00\x00\x00\x00\x01\xf4\x00\x0a\x00\x0a") as port:
        assert amqp_answers("127.0.0.1", port, timeout=5)


def test_a_port_that_accepts_but_never_answers_is_a_wedged_broker() -> None:
    with listener(None) as port:
        assert not amqp_answers("127.0.0.1", port, timeout=0.5)


def test_something_else_on_the_port_is_not_a_broker() -> None:
    with listener(b"HTTP/1.1 400 Bad Request\r\n\r\n") as port:
        assert not amqp_answers("127.0.0.1", port, timeout=5)


def test_nothing_listening_is_not_a_broker() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not amqp_answers("127.0.0.1", port, timeout=1)
