"""A real ``colorkit serve`` process for the tests, small photos, and headless Chromium."""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png_bytes(w: int, h: int, seed: int = 0, grey: bool = False) -> bytes:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    arr = np.clip(rng.uniform(50, 200, 3) + 50 * np.sin(xx[..., None] / 7 + np.arange(3)) + 0 * yy[..., None], 0, 255)
    img = Image.fromarray(arr.astype(np.uint8))
    buf = BytesIO()
    (img.convert("L") if grey else img).save(buf, format="PNG")
    return buf.getvalue()


_URL = re.compile(r"colorkit serve: http://127\.0\.0\.1:(\d+)/")


class Server:
    """``colorkit serve`` on a free loopback port, its working folder, home, temporary
    folder and data cache in empty folders. ``port=0``: the server picks the port, and the
    one it prints is used (``printed_port``)."""

    def __init__(self, root: Path, *extra: str, port: int | None = None) -> None:
        self.root = root
        self.dirs = {n: root / n for n in ("cwd", "home", "tmp", "cache")}
        for d in self.dirs.values():
            d.mkdir(parents=True)
        self.port = free_port() if port is None else port
        self.head = ""  # the output read before the server answered
        env = {**os.environ, "HOME": str(self.dirs["home"]), "TMPDIR": str(self.dirs["tmp"]),
               "COLORKIT_CACHE": str(self.dirs["cache"]), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "colorkit", "serve", "--port", str(self.port), "--device", "cpu", *extra],
            cwd=self.dirs["cwd"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 120
        if self.port == 0:
            self.printed_port = self._read_port(deadline)
            if self.printed_port == 0:
                self.stop()
                raise AssertionError(f"the server printed port 0: {self.head}")
            self.port = self.printed_port
        self.url = f"http://127.0.0.1:{self.port}"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.head}{self.proc.stdout.read()}")
            try:
                urllib.request.urlopen(self.url + "/", timeout=2).read()
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        raise AssertionError("server did not start within 120 s")

    def _read_port(self, deadline: float) -> int:
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while time.monotonic() < deadline:
                if not sel.select(timeout=max(0.0, deadline - time.monotonic())):
                    break
                line = self.proc.stdout.readline()
                if not line:
                    raise AssertionError(f"server exited: {self.head}")
                self.head += line
                m = _URL.search(line)
                if m:
                    return int(m.group(1))
        finally:
            sel.close()
        raise AssertionError(f"the server printed no address within 120 s: {self.head}")

    def post(self, data: bytes, **params) -> tuple[int, dict]:
        query = urllib.parse.urlencode(params)
        req = urllib.request.Request(f"{self.url}/api/colorize?{query}", data=data, method="POST",
                                     headers={"Content-Type": "application/octet-stream"})
        try:
            with urllib.request.urlopen(req, timeout=120) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=60) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def stop(self, sig: int = signal.SIGINT) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.head + self.proc.stdout.read()


def browser():
    """Headless Chromium through selenium; skips, with the reason, when it cannot run."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            break
    else:
        pytest.skip("no Chromium browser installed (apt-get install chromium chromium-driver)")
    driver = shutil.which("chromedriver")
    if driver is None:
        pytest.skip("no chromedriver installed (apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    opts = webdriver.ChromeOptions()
    opts.binary_location = path
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=driver), options=opts)
