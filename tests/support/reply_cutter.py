"""A TCP proxy in front of a real Redis that loses the answer to one transaction.

It forwards bytes both ways until a client sends ``EXEC``; it then waits until `applied()` says
the transaction took effect in Redis (the proxy does not parse replies, so it asks Redis itself)
and closes that client's connection instead of forwarding the reply: the client sees its
connection break after the server committed, as when a network path or a proxy dies at that
moment. Later connections are forwarded untouched.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from types import TracebackType

from tests.support.limits import EVENT_LIMIT_S
from tests.support.polling import wait_for

_EXEC = b"\r\nEXEC\r\n"


class ReplyCutter:
    """Listen on 127.0.0.1 (`port`) and forward to `upstream_port`; cut the first EXEC reply.

    Args:
        applied: true once the cut transaction is visible in Redis.
    """

    def __init__(self, upstream_port: int, applied: Callable[[], bool]) -> None:
        self._upstream_port = upstream_port
        self._applied = applied
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._armed = threading.Lock()  # held by the one connection that cuts
        self.cut = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            upstream = socket.create_connection(("127.0.0.1", self._upstream_port))
            self._sockets += [client, upstream]
            sent_exec = threading.Event()
            threading.Thread(
                target=self._requests, args=(client, upstream, sent_exec), daemon=True
            ).start()
            threading.Thread(
                target=self._replies, args=(upstream, client, sent_exec), daemon=True
            ).start()

    def _requests(
        self, client: socket.socket, upstream: socket.socket, sent: threading.Event
    ) -> None:
        try:
            while data := client.recv(65536):
                if _EXEC in data and not self.cut.is_set():
                    sent.set()  # before forwarding: the reply may come back at once
                upstream.sendall(data)
        except OSError:
            pass

    def _replies(
        self, upstream: socket.socket, client: socket.socket, sent: threading.Event
    ) -> None:
        try:
            while data := upstream.recv(65536):
                if sent.is_set() and self._armed.acquire(blocking=False):
                    wait_for(self._applied, EVENT_LIMIT_S, what="the transaction in Redis")
                    self.cut.set()
                    client.shutdown(socket.SHUT_RDWR)
                    client.close()
                    upstream.close()
                    return
                client.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self._listener.close()
        for sock in self._sockets:
            sock.close()

    def __enter__(self) -> ReplyCutter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
