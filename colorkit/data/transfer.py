"""Time bounds of a download (``colorkit data fetch``): a stall timeout and a minimum rate.

A :class:`Watch` follows one HTTP request, from connecting to the last byte of the body,
in a thread of its own. It stops the request (shuts its sockets, which wakes the blocked
read) when

* nothing arrives for ``stall_timeout`` seconds: no answer yet (connecting, a server that
  never sends its headers, or sends them a byte at a time), or a body that stopped; this
  counts as a dropped connection (``fetch`` retries it from where it stopped);
* over any span of ``stall_timeout`` seconds of the body, fewer than ``min_rate`` bytes a
  second arrived: a trickle (a server sending a byte a second is read forever otherwise);
  this is not retried.

So one request lasts at most about ``2 x stall_timeout`` beyond the last span in which the
rate held. :func:`opener` gives a ``urllib`` opener whose connections the watch follows.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import threading
import time
import urllib.request
from typing import Any

from colorkit.core.registry import ColorkitError

STALL_TIMEOUT = 60.0
"""Seconds without a byte (or of an answer not started) after which a request stops."""
MIN_RATE = 4096
"""Bytes a second a download must average over every span of :data:`STALL_TIMEOUT`."""


def check_bounds(stall_timeout: float, min_rate: float) -> None:
    """A one-line error unless ``stall_timeout`` is a finite number of seconds above 0
    and ``min_rate`` a finite number of bytes a second, 0 or more."""
    if not (isinstance(stall_timeout, (int, float)) and math.isfinite(stall_timeout) and stall_timeout > 0):
        raise ColorkitError(f"--stall-timeout must be a number of seconds above 0, got {stall_timeout!r}")
    if not (isinstance(min_rate, (int, float)) and math.isfinite(min_rate) and min_rate >= 0):
        raise ColorkitError(f"--min-rate must be a number of bytes a second, 0 or more, got {min_rate!r}")


class Watch:
    """Follows one request (see the module docstring). Use as a context manager; call
    :meth:`answered` when the headers are in and :meth:`received` for every piece of the
    body. ``reason`` says why it stopped the request (``None`` while it has not);
    ``retry`` whether that is a stall (retried) rather than a trickle."""

    def __init__(self, stall_timeout: float = STALL_TIMEOUT, min_rate: float = MIN_RATE) -> None:
        check_bounds(stall_timeout, min_rate)
        self.stall_timeout, self.min_rate = float(stall_timeout), float(min_rate)
        self.reason: str | None = None
        self.retry = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._body = False
        now = time.monotonic()
        self._last = self._span_start = now
        self._got = self._span_got = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="colorkit-fetch-watch", daemon=True)

    def attach(self, sock: socket.socket) -> None:
        with self._lock:
            self._socks.append(sock)
            if self.reason is not None:
                self._cut()

    def answered(self) -> None:
        with self._lock:
            self._body = True
            self._last = self._span_start = time.monotonic()
            self._span_got = self._got

    def received(self, n: int) -> None:
        with self._lock:
            self._got += n
            if n:
                self._last = time.monotonic()

    def _cut(self) -> None:
        for s in self._socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _check(self, now: float) -> str | None:
        t = self.stall_timeout
        if now - self._last >= t:
            self.retry = True
            return (f"no data for {t:g} s (--stall-timeout)" if self._body
                    else f"no answer within {t:g} s (--stall-timeout)")
        if self._body and now - self._span_start >= t:
            got = self._got - self._span_got
            if got < self.min_rate * (now - self._span_start):
                return (f"the server sent {got:,} bytes in {now - self._span_start:.0f} s, slower than the minimum "
                        f"of {self.min_rate:,.0f} bytes a second (--min-rate)")
            self._span_start, self._span_got = now, self._got
        return None

    def _run(self) -> None:
        tick = min(0.25, self.stall_timeout / 4)
        while not self._done.wait(tick):
            with self._lock:
                reason = self._check(time.monotonic())
                if reason is not None:
                    self.reason = reason
                    self._cut()
                    return

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()


def _connection(base: type, watch: Watch) -> Any:
    class Watched(base):  # type: ignore[misc, valid-type]
        def connect(self) -> None:
            super().connect()
            watch.attach(self.sock)

    return Watched


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, watch: Watch) -> None:
        super().__init__()
        self.watch = watch

    def http_open(self, req: Any) -> Any:
        return self.do_open(_connection(http.client.HTTPConnection, self.watch), req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watch: Watch) -> None:
        super().__init__()
        self.watch = watch

    def https_open(self, req: Any) -> Any:
        return self.do_open(_connection(http.client.HTTPSConnection, self.watch), req, context=self._context)


def opener(watch: Watch, *handlers: Any) -> urllib.request.OpenerDirector:
    """A ``urllib`` opener (with ``handlers`` too) whose connections ``watch`` follows."""
    return urllib.request.build_opener(*handlers, _HTTP(watch), _HTTPS(watch))
