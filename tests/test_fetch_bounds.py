"""`colorkit data fetch` against a hostile loopback server (127.0.0.1, started here): a
trickle, silence, headers a byte at a time and a redirect loop each end with one line
within the time bounds (`--stall-timeout`, `--min-rate`), set low here."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cli_helpers import one_line_error, run_cli

from colorkit.core.registry import ColorkitError
from colorkit.data.recipes import fetch

SERVER_SECONDS = 30
"""No handler of the server below runs longer than this."""


class _Slow:
    """``/drip``: announces 10,000 bytes and sends one a second; ``/silent``: headers,
    then nothing; ``/slow-headers``: its headers a byte a second; ``/loop``: redirects to
    itself; ``/fast``: 1,000 bytes at once."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *args) -> None:
                pass

            def _drip(self, data: bytes) -> None:
                t0 = time.monotonic()
                try:
                    for b in data:
                        if time.monotonic() - t0 > SERVER_SECONDS:
                            return
                        self.wfile.write(bytes([b]))
                        self.wfile.flush()
                        time.sleep(1.0)
                except OSError:  # the client went away
                    pass

            def do_GET(self) -> None:  # noqa: N802
                outer.requests.append(self.path)
                if self.path == "/loop":
                    self.send_response(302)
                    self.send_header("Location", "/loop")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                elif self.path == "/slow-headers":
                    self._drip(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\nX-Padding: " + b"x" * 100 + b"\r\n\r\n")
                elif self.path == "/fast":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    self.wfile.write(b"\0" * 1000)
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", "10000")
                    self.end_headers()
                    self.wfile.flush()
                    if self.path == "/drip":
                        self._drip(b"\0" * 10000)
                    else:
                        time.sleep(min(SERVER_SECONDS, 10))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def slow():
    with _Slow() as srv:
        yield srv


def test_a_trickling_server_ends_with_one_line_within_the_bound(slow, tmp_path, capsys):
    t0 = time.monotonic()
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{slow.url}/drip", "--stall-timeout", "2",
                            "--min-rate", "100", "--cache-dir", str(tmp_path), "-q"], capsys)
    seconds = time.monotonic() - t0
    one_line_error(code, err, "slower than the minimum of 100 bytes a second (--min-rate)")
    assert "partial file kept" in err and seconds < 8, (seconds, err)
    assert slow.requests.count("/drip") == 1  # a trickle is not retried


@pytest.mark.parametrize("path,needle", [("/silent", "no data for 1 s"), ("/slow-headers", "no answer within 1 s")])
def test_silence_and_slow_headers_end_within_the_bound(path, needle, slow, tmp_path):
    t0 = time.monotonic()
    with pytest.raises(ColorkitError) as exc:
        fetch("lfw", url=slow.url + path, cache_dir=tmp_path, progress=False, retries=1, stall_timeout=1,
              min_rate=100)
    seconds = time.monotonic() - t0
    assert needle in str(exc.value) and "\n" not in str(exc.value)
    assert seconds < 8, seconds  # two tries of about a second each, and the pause between them
    assert slow.requests.count(path) >= 2  # a stall is retried


def test_the_bounds_do_not_stop_a_fast_download_and_are_checked(slow, tmp_path, capsys):
    import hashlib

    got = fetch("lfw", url=f"{slow.url}/fast", cache_dir=tmp_path, progress=False, stall_timeout=1, min_rate=100,
                sha256=hashlib.sha256(b"\0" * 1000).hexdigest())
    assert got.read_bytes() == b"\0" * 1000
    for opt, value in (("--stall-timeout", "nan"), ("--min-rate", "inf")):
        code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{slow.url}/fast", opt, value, "--cache-dir",
                                str(tmp_path / "x"), "-q"], capsys)
        one_line_error(code, err, opt)


def test_a_redirect_loop_is_one_line(slow, tmp_path, capsys):
    code, _, err = run_cli(["data", "fetch", "lfw", "--url", f"{slow.url}/loop", "--cache-dir", str(tmp_path), "-q"],
                           capsys)
    one_line_error(code, err, "the server redirects in a loop")
