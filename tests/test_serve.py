"""``colorkit serve``: a real server process on a free loopback port. Uploads good and bad
files over HTTP, checks the answers, that the server keeps running, that it writes only
in its temporary folder and removes it at exit; then drives headless Chromium through
the page (skipped, with the reason, when no browser or driver is installed)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import time
import urllib.error
import urllib.request
from io import BytesIO

import pytest
from PIL import Image
from serve_helpers import Server, free_port, png_bytes
from serve_helpers import browser as open_browser

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e '.[serve]')")

from colorkit.apps.serve import MAX_PIXELS, MAX_UPLOAD_BYTES  # noqa: E402 - the defaults the server runs with


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve"))
    yield s
    s.stop()


def test_page_says_colour_photos_are_greyed_and_names_the_demo_model(server):
    code, body = server.get("/")
    page = body.decode()
    assert code == 200 and "Colour photos are turned grey first" in page
    assert "trained only on ~300 small (64x64) demo photos" in page and 'value="demo"' in page
    assert "http://" not in page.replace(server.url, "")  # nothing loaded from other hosts


def test_colorize_upload_k_full_resolution_pngs(server):
    code, res = server.post(png_bytes(90, 70, seed=1), k=3, model="demo")
    assert code == 200, res
    assert res["k"] == 3 and len(res["results"]) == 3 and res["colour"] is True
    assert (res["width"], res["height"]) == (90, 70)
    for url in [res["grey"], *res["results"]]:
        c, data = server.get(url)
        assert c == 200
        img = Image.open(BytesIO(data))
        assert img.format == "PNG" and img.size == (90, 70)
    code, res = server.post(png_bytes(40, 30, seed=2, grey=True), k=1)
    assert code == 200 and res["colour"] is False and len(res["results"]) == 1


@pytest.mark.parametrize("data,params,status,needle", [
    (b"hello, not an image", {"k": 2}, 400, "not an image"),
    (b"", {"k": 2}, 400, "No file was received"),
    (png_bytes(60, 60)[:200], {"k": 2}, 400, "damaged or cut short"),
    (None, {"k": 2}, 413, "too large: 5000x4000 = 20,000,000 pixels; the limit is 16,000,000"),
    (b"\0" * (MAX_UPLOAD_BYTES + 1), {"k": 2}, 413, "larger than 25 MB"),
    (png_bytes(30, 30), {"k": 9}, 400, "k must be a whole number from 1 to 8"),
    (png_bytes(30, 30), {"k": "x"}, 400, "k must be a whole number"),
    (png_bytes(30, 30), {"k": 2, "model": "nope"}, 400, "Unknown model 'nope'"),
])
def test_bad_uploads_get_a_clear_message(server, data, params, status, needle):
    if data is None:  # more pixels than the limit, in a small file (nothing is decoded)
        buf = BytesIO()
        Image.new("L", (5000, 4000)).save(buf, format="PNG")
        data = buf.getvalue()
        assert len(data) < MAX_UPLOAD_BYTES and 5000 * 4000 > MAX_PIXELS
    code, res = server.post(data, **params)
    assert code == status and needle in res["error"], res
    assert "\n" not in res["error"]
    assert server.get("/")[0] == 200  # still serving


@pytest.mark.parametrize("path", ["/results/../../etc/passwd", "/results/%2e%2e/%2e%2e/etc/passwd",
                                  "/results/" + "0" * 32 + "/upload", "/results/abc/1.png"])
def test_result_paths_cannot_leave_the_temp_folder(server, path):
    code, _ = server.get(path)
    assert code == 404


def test_serve_user_errors_are_one_line(tmp_path, capsys):
    from colorkit.cli import main

    def run(args):
        with pytest.raises(SystemExit) as exc:
            main(args)
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        assert exc.value.code == 2 and len(lines) == 1 and lines[0].startswith("colorkit: error:"), err
        return lines[0]

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert "cannot listen on 127.0.0.1:" in run(["serve", "--port", str(busy.getsockname()[1])])
    assert "--no-demo needs at least one --run" in run(["serve", "--no-demo"])
    assert "not a colorkit run directory" in run(["serve", "--run", str(tmp_path), "--port", str(free_port())])


@pytest.fixture(scope="module")
def busy_server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve-busy"), "--keep", "4", "--queue", "6", "--read-timeout", "5")
    yield s
    s.stop()


def test_concurrent_uploads_are_never_evicted_while_in_flight(busy_server):
    """Twelve uploads at once with --keep 4: each is answered with its colorizations (none
    removed under it while it waited), and only finished results are evicted."""
    from concurrent.futures import ThreadPoolExecutor

    photos = [png_bytes(160 + i, 120, seed=i) for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda d: busy_server.post(d, k=2), photos * 2))
    assert [code for code, _ in answers] == [200] * 12, [res for code, res in answers if code != 200]
    served = [res for _, res in answers if busy_server.get(res["results"][1])[0] == 200]
    assert len(served) == 4  # the newest four finished results
    for res in served:
        assert Image.open(BytesIO(busy_server.get(res["grey"])[1])).size == (res["width"], res["height"])


def test_a_full_queue_is_answered_503_and_a_stalled_upload_408(busy_server):
    host, port = "127.0.0.1", busy_server.port
    stalled = []
    for _ in range(6):  # six uploads that announce a body and never send it
        c = socket.create_connection((host, port), timeout=30)
        c.sendall(b"POST /api/colorize?k=1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                  b"Content-Length: 1000\r\n\r\nabc")
        stalled.append(c)
    deadline = time.monotonic() + 4  # until the server has taken the six (a busy machine may be slow)
    while True:
        req = urllib.request.Request(f"{busy_server.url}/api/colorize?k=1", data=b"", method="POST")
        with pytest.raises(urllib.error.HTTPError) as exc:  # an empty body: 400 while a slot is free
            urllib.request.urlopen(req, timeout=30)
        if exc.value.code == 503 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert exc.value.code == 503 and exc.value.headers["Retry-After"] == "5"
    assert "busy" in json.loads(exc.value.read())["error"]
    for c in stalled:
        head = c.recv(4096).decode()
        c.close()
        assert head.startswith("HTTP/1.1 408"), head
    assert busy_server.post(png_bytes(30, 30), k=1)[0] == 200  # the slots are free again


def test_an_internal_error_never_shows_the_servers_paths(tmp_path):
    from starlette.testclient import TestClient

    from colorkit.apps.serve import create_app

    class Broken:
        name, bundled, run_dir, method = "broken", False, "elsewhere", None

        def iter_colorize(self, img, k, max_pixels):
            raise FileNotFoundError(2, "No such file or directory", str(tmp_path / "work" / "x" / "1.png"))

    class Models:
        colorizers = {"broken": Broken()}

        def describe(self):
            return [{"name": "broken", "method": "broken", "label": "broken", "note": "", "modes": []}]

    (tmp_path / "work").mkdir()
    client = TestClient(create_app(Models(), tmp_path / "work"))
    r = client.post("/api/colorize?k=1", content=png_bytes(30, 30))
    assert r.status_code == 500 and "Internal error" in r.json()["error"]
    assert str(tmp_path) not in r.json()["error"]


# ------------------------------------------------------------------ the browser
def test_browser_uploads_a_photo_and_shows_k_colorizations(server, tmp_path):
    from colorkit.builtin_components import DEMO_DIR

    src = sorted(DEMO_DIR.rglob("*.jpg"))[0]
    photo = tmp_path / "photo.jpg"
    with Image.open(src) as im:  # a real colour photo, enlarged so the page shows full-size downloads
        im.convert("RGB").resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC).save(photo, quality=92)
    size = Image.open(photo).size
    browser = open_browser()
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    try:
        browser.get(server.url + "/")
        assert "Colour photos are turned grey first" in browser.page_source
        # a bad upload first: a message on the page, no results
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        browser.find_element(By.ID, "file").send_keys(str(bad))
        browser.find_element(By.ID, "go").click()
        WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "error").is_displayed())
        assert "not an image" in browser.find_element(By.ID, "error").text

        k = 3
        Select(browser.find_element(By.ID, "k")).select_by_value(str(k))
        browser.find_element(By.ID, "file").send_keys(str(photo))
        browser.find_element(By.ID, "go").click()
        loaded = ("return Array.from(document.querySelectorAll('img.result'))"
                  ".filter(i => i.complete && i.naturalWidth > 0).map(i => [i.naturalWidth, i.naturalHeight]);")
        WebDriverWait(browser, 120).until(lambda b: len(b.execute_script(loaded)) == k)
        assert [tuple(s) for s in browser.execute_script(loaded)] == [size] * k
        assert not browser.find_element(By.ID, "error").is_displayed()
        notice = browser.find_element(By.ID, "notice")
        assert notice.is_displayed() and "turned grey first" in notice.text
        links = browser.find_elements(By.CSS_SELECTOR, "a.download")
        assert len(links) == k + 1 and links[1].get_attribute("download") == "photo_1.png"
        shot = tmp_path / "serve.png"
        assert browser.save_screenshot(str(shot))
        assert Image.open(shot).size[0] >= 800
        if os.environ.get("COLORKIT_SCREENSHOT"):  # how docs/serve.png is made
            shutil.copyfile(shot, os.environ["COLORKIT_SCREENSHOT"])
    finally:
        browser.quit()


# ------------------------------------------------------------------ last: stop and clean up
def test_writes_only_in_its_temp_folder_and_removes_it_at_exit(server):
    d = server.dirs
    assert list(d["cwd"].iterdir()) == [] and list(d["cache"].iterdir()) == []
    assert [p for p in d["home"].rglob("*")] == []
    temp = [p.name for p in d["tmp"].iterdir()]
    assert len(temp) == 1 and temp[0].startswith("colorkit-serve-"), temp
    log = server.stop()
    assert server.proc.returncode == 0, log
    assert f"http://127.0.0.1:{server.port}/" in log  # bound to loopback by default
    assert "Traceback" not in log, log
    assert list(d["tmp"].iterdir()) == [], log


def test_sigterm_also_removes_the_temp_folder(tmp_path):
    """``docker stop`` and systemd send SIGTERM: the temporary folder must go as with Ctrl+C
    (uvicorn re-raised SIGTERM after its shutdown, which killed the process before the
    clean-up ran)."""
    s = Server(tmp_path / "serve")
    assert len(list(s.dirs["tmp"].iterdir())) == 1
    log = s.stop(signal.SIGTERM)
    assert "Traceback" not in log, log
    assert list(s.dirs["tmp"].iterdir()) == [], log
