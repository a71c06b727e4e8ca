"""A downstream script that uses only ``import colorkit``: it registers a method of its own
with the decorator, trains it (tiny), saves and loads a component, colorizes a folder and
resumes it, writes a clip, and fetches an archive from a loopback server."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_public_api import _top_level_only

SCRIPT = '''
"""Only top-level colorkit names."""
import json
import sys
from pathlib import Path

import torch
from torch import nn

import colorkit


class FlatConfig(colorkit.ComponentConfig):
    epochs: int = 1
    batch_size: int = 8
    lr: float = 0.01


@colorkit.register("method", "downstream-flat", description="a 1x1 convolution from grey to ab, k shifted copies")
class Flat(colorkit.Method):
    PRESETS = {"paper": {}, "small": {}, "tiny": {}}
    Config = FlatConfig

    def __init__(self, config=None, *, stats=None, **fields):
        super().__init__(config, stats=stats, **fields)
        self.net = nn.Conv2d(1, 2, 1)

    def stages(self):
        def step(batch, ctx):
            loss = (self.net(batch["grey"]) - batch["ab"]).pow(2).mean()
            ctx.optimize("net", loss)
            return {"loss": loss.detach()}

        return [colorkit.Stage("net", {"net": self.net},
                               lambda: {"net": torch.optim.Adam(self.net.parameters(), lr=self.config.lr)}, step,
                               epochs=self.config.epochs, batch_size=self.config.batch_size)]

    @torch.no_grad()
    def sample(self, grey, k, *, generator=None, **options):
        ab = self.net(grey)
        shifts = torch.linspace(-0.1, 0.1, k, device=grey.device).view(1, k, 1, 1, 1)
        return ab.unsqueeze(1) + shifts


def main(images, clip, url, sha256, work):
    work = Path(work)
    out = {"registered": "downstream-flat" in colorkit.list("method")}
    data = colorkit.DataConfig(dataset=images, size=32, test_size=8, cache_dir=str(work / "cache"))
    run = colorkit.train("downstream-flat", data=data, preset="tiny", out=work / "run", progress=False,
                         device="cpu")
    # one component saved and loaded on its own
    method = colorkit.create("method", "downstream-flat", stats=None, preset="tiny")
    method.save(work / "component")
    again = Flat.load(work / "component")
    out["component"] = type(again).__name__
    out["same_weights"] = all(torch.equal(a, b) for a, b in zip(method.state_dict().values(),
                                                                 again.state_dict().values()))
    colorizer = colorkit.load(run, device="cpu")
    out["colorizer"] = isinstance(colorizer, colorkit.Colorizer)
    first = colorkit.colorize_folder(colorizer, images, work / "colorized", k=2, progress=False, echo=lambda *a: None)
    second = colorkit.colorize_folder(colorizer, images, work / "colorized", k=2, progress=False,
                                      echo=lambda *a: None)
    out["folder"] = [first["colorized"], second["colorized"], second["already_done"]]
    record = colorkit.colorize_clip(colorizer, clip, work / "clip", k=2, progress=False, echo=lambda *a: None)
    out["clip"] = [record["frames"], len(record["made"])]
    archive = colorkit.fetch("lfw", url=url, sha256=sha256, cache_dir=work / "fetch", progress=False)
    out["fetched"] = Path(archive).read_bytes() == b"an archive served on the loopback"
    print(json.dumps(out))


main(*sys.argv[1:])
'''

ARCHIVE = b"an archive served on the loopback"


@pytest.fixture
def server():
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(ARCHIVE)))
            self.end_headers()
            self.wfile.write(ARCHIVE)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/lfw.tgz"
    httpd.shutdown()
    httpd.server_close()


def test_a_downstream_script_does_everything_with_import_colorkit_only(tmp_path, server):
    from video_helpers import make_clip

    assert _top_level_only(ast.parse(SCRIPT)) == []
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(36):
        base = rng.uniform(0.1, 0.9, 3)
        ramp = np.linspace(0, 1, 36)[None, :, None] * rng.uniform(-0.4, 0.4, 3)
        arr = (np.clip(base + ramp + np.zeros((36, 36, 3)), 0, 1) * 255).astype(np.uint8)
        Image.fromarray(arr).save(images / f"img_{i:03d}.png")
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    script = tmp_path / "downstream.py"
    script.write_text(SCRIPT)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(script), str(images), str(clip), server,
                        hashlib.sha256(ARCHIVE).hexdigest(), str(tmp_path / "work")],
                       env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"registered": True, "component": "Flat", "same_weights": True, "colorizer": True,
                   "folder": [36, 0, 36], "clip": [4, 2], "fetched": True}, out
