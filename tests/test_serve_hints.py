"""Colour hints on ``colorkit serve``: the endpoint takes them with the upload (their JSON
form in the query string), colorizes with them exactly as the library does, and answers a
bad hint with one line; in headless Chromium a click on the photo places a hint, a picked
colour, a drag and a removal each change the colorizations shown, and removing the hint
gives back the first result."""

from __future__ import annotations

import base64
import json
from io import BytesIO

import numpy as np
import pytest
from PIL import Image
from serve_helpers import Server, png_bytes
from serve_helpers import browser as open_browser

pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install -e '.[serve]')")
pytest.importorskip("uvicorn", reason="the serve extra is not installed (pip install -e '.[serve]')")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    s = Server(tmp_path_factory.mktemp("serve-hints"))
    yield s
    s.stop()


def pixels(server: Server, url: str) -> np.ndarray:
    code, data = server.get(url)
    assert code == 200
    return np.asarray(Image.open(BytesIO(data)).convert("RGB"))


def test_hints_give_the_librarys_colorizations(server):
    """The server's colorizations with hints are the library's, pixel for pixel, and differ
    from those without; MAX_HINTS hints fit in the request."""
    from colorkit.core.hints import MAX_HINTS
    from colorkit.inference import load

    photo = png_bytes(90, 70, seed=3)
    hints = [{"x": 20.5, "y": 30, "color": "#1f9e3a"}, {"x": 70, "y": 10, "color": "#c03020"}]
    code, plain = server.post(photo, k=2)
    assert code == 200 and plain["hints"] == []
    code, res = server.post(photo, k=2, hints=json.dumps(hints))
    assert code == 200, res
    assert res["hints"] == [{"x": 20.5, "y": 30.0, "color": "#1f9e3a"}, {"x": 70.0, "y": 10.0, "color": "#c03020"}]
    served = [pixels(server, u) for u in res["results"]]
    assert any(not np.array_equal(a, pixels(server, b)) for a, b in zip(served, plain["results"]))
    library = load(None, device="cpu").colorize(Image.open(BytesIO(photo)).convert("RGB"), 2, hints=hints)
    for got, want in zip(served, library):
        assert np.array_equal(got, np.asarray(want))
    many = [{"x": i % 90, "y": i % 70, "color": "#3a7a2f"} for i in range(MAX_HINTS)]
    code, res = server.post(photo, k=1, hints=json.dumps(many))
    assert code == 200 and len(res["hints"]) == MAX_HINTS, res


@pytest.mark.parametrize("hints,needle", [
    ('[{"x": 500, "y": 10, "color": "#ff0000"}]', "hint 500,10,#ff0000 lies outside the 90x70 photo"),
    ('[{"x": 5, "y": -1, "color": "#ff0000"}]', "lies outside the 90x70 photo"),
    ('[{"x": 5, "y": 10, "color": "#zz0000"}]', "hint 1: hint at (5, 10): color '#zz0000' is not an sRGB hex colour"),
    ('[{"x": NaN, "y": 10, "color": "#ff0000"}]', "x must be a finite number, got nan"),
    ('[{"x": 5, "y": 1e999, "color": "#ff0000"}]', "y must be a finite number, got inf"),
    (json.dumps([{"x": 1, "y": 1, "color": "#000000"}] * 1001), "1001 hints; at most 1000 are taken"),
    ('[{"x": 5, "y": 10, "colour": "#ff0000"}]', "unknown keys 'colour'"),
    ('[{"x": 5, "y": 10', "hints: not valid JSON"),
    ("[" * 20000 + "]" * 20000, "hints: not valid JSON"),
    ('{"x": 5, "y": 10, "color": "#ff0000"}', "expected a JSON list"),
])
def test_a_bad_hint_is_a_one_line_message(server, hints, needle):
    code, res = server.post(png_bytes(90, 70, seed=4), k=2, hints=hints)
    assert code == 400 and needle in res["error"], res
    assert "\n" not in res["error"] and str(server.root) not in res["error"] and "/tmp" not in res["error"]
    assert server.post(png_bytes(30, 20), k=1)[0] == 200  # still serving


# ------------------------------------------------------------------ the browser
SHOWN = """return Array.from(document.querySelectorAll('img.result')).map((i) => {
  const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
  c.getContext('2d').drawImage(i, 0, 0); return c.toDataURL('image/png'); });"""
SETTLED = """return document.body.dataset.state === 'idle' && Number(document.body.dataset.updates) > arguments[0]
  && Array.from(document.querySelectorAll('img.result, img.grey')).every((i) => i.complete && i.naturalWidth > 0);"""
SET_VALUE = """arguments[0].value = arguments[1];
  arguments[0].dispatchEvent(new Event('input', {bubbles: true}));
  arguments[0].dispatchEvent(new Event('change', {bubbles: true}));"""


def shown(b) -> list[np.ndarray]:
    """The colorizations the page shows, as its canvas reads their pixels."""
    return [np.asarray(Image.open(BytesIO(base64.b64decode(u.split(",", 1)[1]))).convert("RGB"))
            for u in b.execute_script(SHOWN)]


def after(b, action) -> list[np.ndarray]:
    """Do ``action``, wait until the page has asked again and shows the answer; its images."""
    from selenium.webdriver.support.ui import WebDriverWait

    n = int(b.execute_script("return document.body.dataset.updates"))
    action()
    WebDriverWait(b, 120).until(lambda b: b.execute_script(SETTLED, n))
    return shown(b)


def changed(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b))
    return any(not np.array_equal(x, y) for x, y in zip(a, b))


def test_browser_hints_change_the_colorizations_and_removing_them_restores_the_first(server, tmp_path):
    from colorkit.builtin_components import DEMO_DIR

    src = sorted(DEMO_DIR.rglob("*.jpg"))[0]
    photo = tmp_path / "photo.jpg"
    with Image.open(src) as im:  # shown scaled down (at most 420 pixels wide): clicks are converted
        im.convert("RGB").resize((600, 450), Image.Resampling.BICUBIC).save(photo, quality=92)
    b = open_browser()
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    def hint_xy() -> tuple[float, float]:
        return tuple(float(b.find_element(By.CSS_SELECTOR, f"#hint-list .hint-{a}").get_attribute("value"))
                     for a in "xy")

    try:
        b.get(server.url + "/")
        assert "Colour hints" in b.page_source
        Select(b.find_element(By.ID, "k")).select_by_value("3")
        b.find_element(By.ID, "file").send_keys(str(photo))
        first = after(b, lambda: b.find_element(By.ID, "go").click())
        assert len(first) == 3 and first[0].shape == (450, 600, 3)
        grey = b.find_element(By.CSS_SELECTOR, "img.grey")
        b.execute_script("arguments[0].scrollIntoView({block: 'center'});", grey)
        w, h = b.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", grey)
        assert w < 600  # shown smaller than the photo

        # a click places a hint at the photo's own pixel under the pointer
        after(b, lambda: ActionChains(b).move_to_element_with_offset(grey, 60, -40).click().perform())
        x, y = hint_xy()
        assert abs(x - (w / 2 + 60) * 600 / w) < 2 and abs(y - (h / 2 - 40) * 450 / h) < 2, (x, y, w, h)
        assert len(b.find_elements(By.CSS_SELECTOR, ".marker")) == 1

        # a colour picked in the colour input changes the colorizations
        colour = b.find_element(By.CSS_SELECTOR, "#hint-list input.hint-color")
        assert colour.get_attribute("type") == "color"
        green = after(b, lambda: b.execute_script(SET_VALUE, colour, "#1f9e3a"))
        assert changed(first, green)
        assert "with 1 hint" in b.find_element(By.ID, "status").text

        # a drag moves it, in the photo's pixels, and changes them again
        marker = b.find_element(By.CSS_SELECTOR, ".marker")
        moved = after(b, lambda: ActionChains(b).drag_and_drop_by_offset(marker, -80, 50).perform())
        x2, y2 = hint_xy()
        assert abs(x2 - (x - 80 * 600 / w)) < 3 and abs(y2 - (y + 50 * 450 / h)) < 3, (x, y, x2, y2)
        assert changed(green, moved)

        # a hint edited outside the photo: the server's one-line message on the page
        box = b.find_element(By.CSS_SELECTOR, "#hint-list .hint-x")
        same = after(b, lambda: b.execute_script(SET_VALUE, box, "99999"))
        error = b.find_element(By.ID, "error")
        assert error.is_displayed() and "lies outside the 600x450 photo" in error.text, error.text
        assert not changed(moved, same)

        # removing the hint gives back the first colorizations, pixel for pixel
        back = after(b, lambda: b.find_element(By.CSS_SELECTOR, "#hint-list .hint-remove").click())
        assert not changed(first, back)
        assert not b.find_element(By.ID, "error").is_displayed()
        assert b.find_elements(By.CSS_SELECTOR, ".marker") == []
    finally:
        b.quit()
