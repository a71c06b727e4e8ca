"""The connections of ``colorkit serve``: its listening socket and a bound on every connection.

:func:`listen` binds the socket before anything else is done (a port in use is a one-line
error at once, and ``--port 0`` gives the port the system chose, which the server prints).

:func:`guarded_protocol` is uvicorn's HTTP/1.1 protocol (h11) with two bounds uvicorn lacks:
a connection must send a request's complete headers within ``header_timeout`` seconds of
opening (or of its previous answer, on a kept-alive connection), else it is closed; and at
most ``max_connections`` connections are open at once, one more is answered 503 with
``Retry-After`` and closed. Together they bound what clients that never finish their
headers can hold (sockets, memory) in number and in time; a request whose headers are in
is bounded by the upload's own read timeout (:mod:`colorkit.apps.serve`).
"""

from __future__ import annotations

import socket
from typing import Any

from colorkit.core.registry import ColorkitError

MAX_CONNECTIONS = 128
"""Connections open at once by default; one more is answered 503 and closed."""
MAX_HEADER_BYTES = 256 * 1024
"""Largest request line and headers taken (the hints travel in the query string)."""

_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 5\r\n"
         b"connection: close\r\ncontent-length: %d\r\n\r\n%s")
_BUSY_BODY = b'{"error": "The server has too many open connections; try again in a few seconds."}'


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port), bound as uvicorn binds
    one (IPv6 when the host has a colon); one line when it cannot be had."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ColorkitError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port "
                            "or --host") from None
    return sock


def bound_port(sock: socket.socket) -> int:
    """The port ``sock`` listens on (the one the system chose for port 0)."""
    return int(sock.getsockname()[1])


def guarded_protocol(*, header_timeout: float, max_connections: int = MAX_CONNECTIONS) -> type:
    """uvicorn's h11 protocol class with a header timeout and a connection cap (see the module)."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_timer: Any = None

        def _waiting(self) -> bool:  # no request in progress: waiting for the next one's headers
            return self.cycle is None or self.cycle.response_complete

        def _arm(self) -> None:
            self._disarm()
            if self._waiting() and not self.transport.is_closing():
                self._header_timer = self.loop.call_later(header_timeout, self._headers_timed_out)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_timed_out(self) -> None:
            self._header_timer = None
            if self._waiting() and not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(_BUSY % (len(_BUSY_BODY), _BUSY_BODY))
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if not self._waiting():
                self._disarm()  # the headers are in: the upload's own timeouts take over

        def on_response_complete(self) -> None:
            super().on_response_complete()
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11Protocol
