"""The connections of ``colorkit serve``: ``--port 0`` prints the port it listens on;
connections that never finish their headers are closed after ``--read-timeout`` and the
open connections are capped (``--max-connections``); a client that goes away mid-upload is
not an internal error. Raw sockets to 127.0.0.1 only, few of them, every wait bounded."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from serve_helpers import Server, png_bytes

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e '.[serve]')")

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve-conn"), "--read-timeout", str(HEADER_TIMEOUT),
               "--max-connections", str(MAX_CONNECTIONS), port=0)
    yield s
    s.stop()


def test_port_0_prints_the_port_it_listens_on(server):
    assert server.printed_port != 0
    code, page = server.get("/")
    assert code == 200 and b"colorkit" in page


def closed_within(conns: list[socket.socket], seconds: float) -> list[tuple[bytes, float] | None]:
    """For each connection: what the server sent before it closed it and when (seconds
    from now), or None when it was still open after ``seconds``."""
    start = time.monotonic()
    deadline = start + seconds
    out: list[tuple[bytes, float] | None] = []
    for c in conns:
        got = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                out.append(None)
                break
            c.settimeout(left)
            try:
                chunk = c.recv(4096)
            except TimeoutError:
                continue
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                out.append((got, time.monotonic() - start))
                break
            got += chunk
    return out


def test_unfinished_headers_are_closed_and_connections_capped(server):
    addr = ("127.0.0.1", server.port)
    conns = []
    try:
        # a kept-alive connection that starts a second request and never finishes its headers
        kept = socket.create_connection(addr, timeout=10)
        kept.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head = b""
        while b"</html>" not in head:
            chunk = kept.recv(65536)
            assert chunk, head[:200]
            head += chunk
        assert head.startswith(b"HTTP/1.1 200")
        kept.sendall(b"GET / HTTP/1.1\r\nHo")
        conns.append(kept)
        # one that sends its headers a byte at a time, never ending them
        slow = socket.create_connection(addr, timeout=10)
        conns.append(slow)
        # more that stop in the middle of their headers than the server takes at once
        for _ in range(MAX_CONNECTIONS + 3):
            c = socket.create_connection(addr, timeout=10)
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            conns.append(c)
        t0 = time.monotonic()
        conns[2].settimeout(0.3)
        with pytest.raises(TimeoutError):  # taken and waiting: not closed at once
            conns[2].recv(1)
        for _ in range(8):  # for twice the timeout, unless the server closes it first
            try:
                slow.sendall(b"X")
            except OSError:  # closed by the server
                break
            time.sleep(0.25)
        bound = HEADER_TIMEOUT + 6.0  # the timeout plus a generous margin for a busy machine
        closed = closed_within(conns, bound - (time.monotonic() - t0))
        assert all(c is not None for c in closed), f"{closed.count(None)} of {len(conns)} still open after {bound} s"
        refused = [got for got, _ in closed if got.startswith(b"HTTP/1.1 503")]
        assert len(refused) >= 3 and all(b"too many open connections" in got and b"retry-after: 5" in got
                                         for got in refused), closed
        assert all(got in (b"", *refused) for got, _ in closed)  # closed without an answer: no request came
    finally:
        for c in conns:
            c.close()
    assert server.get("/")[0] == 200  # the slots are free again
    assert server.post(png_bytes(30, 20), k=1)[0] == 200


def test_a_client_that_disconnects_mid_upload_is_not_an_internal_error(tmp_path, capsys):
    """In-process: the upload's body stops with a disconnect. At most one line is logged,
    no traceback, no 'internal error', and the upload's folder is removed."""
    from colorkit.apps.serve import create_app

    class Models:  # never reached: the upload does not finish
        colorizers = {"demo": None}

        def describe(self):
            return [{"name": "demo", "method": "mdn", "label": "demo", "note": "", "modes": []}]

    (tmp_path / "work").mkdir()
    app = create_app(Models(), tmp_path / "work")
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
             "scheme": "http", "path": "/api/colorize", "raw_path": b"/api/colorize", "query_string": b"k=1",
             "root_path": "", "headers": [(b"content-type", b"application/octet-stream"),
                                           (b"content-length", b"100000")],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 7860)}
    messages = [{"type": "http.request", "body": b"\x89PNG" + b"x" * 996, "more_body": True}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        pass

    asyncio.run(app(scope, receive, send))
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err and len(err.strip().splitlines()) <= 1, err
    assert list((tmp_path / "work").iterdir()) == []


def test_a_real_disconnect_mid_upload_leaves_no_traceback_in_the_log(server):
    """The same through the real server (a reset connection mid-body); checked in its log
    when it stops."""
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        c.sendall(b"POST /api/colorize?k=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"x" * 5000)
        time.sleep(0.2)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # reset
        c.close()
    time.sleep(0.5)
    assert server.post(png_bytes(30, 20), k=1)[0] == 200
    log = server.stop()
    assert server.proc.returncode == 0, log
    assert "Traceback" not in log and "internal error" not in log, log
