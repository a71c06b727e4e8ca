"""Tiny clips made by the tests (PyAV): a few frames of a moving grey square."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np


def frame(i: int, width: int, height: int) -> np.ndarray:
    """Frame ``i``: a grey gradient with a light square moving right, (H, W, 3) uint8."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = (60 + 100 * yy / max(1, height - 1)).astype(np.uint8)
    x0 = (3 * i) % max(1, width - 8)
    img[2:10, x0:x0 + 8] = 220
    return np.repeat(img[..., None], 3, axis=2)


def make_clip(path: str | Path, *, frames: int = 6, width: int = 48, height: int = 32, fps: int = 24,
              codec: str | None = None, pix_fmt: str = "yuv420p", audio: bool = False, rotation: int | None = None,
              pts: list[int] | None = None, time_base: Fraction | None = None, video: bool = True) -> Path:
    """Write a clip; ``pts`` (in ``time_base``) gives a variable frame rate; ``rotation``
    sets the display matrix (degrees counter-clockwise); ``video=False`` writes audio only."""
    import av

    path = Path(path)
    codec = codec or {".webm": "libvpx-vp9", ".avi": "mpeg4", ".gif": "gif"}.get(path.suffix, "libx264")
    out = av.open(str(path), "w")
    vs = None
    if video:
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height = width, height
        vs.pix_fmt = "rgb8" if codec == "gif" else pix_fmt
        if time_base is not None:
            vs.time_base = time_base
            vs.codec_context.time_base = time_base
        if rotation is not None:
            vs.set_display_rotation(rotation)
    aus = None
    if audio:
        aus = out.add_stream("aac" if path.suffix != ".webm" else "libopus", rate=48000)
        aus.layout = "mono"
    if vs is not None:
        if frames == 0:
            out.start_encoding()  # a video track without frames
        for i in range(frames):
            f = av.VideoFrame.from_ndarray(frame(i, width, height), format="rgb24")
            f.pts = pts[i] if pts is not None else i
            if time_base is not None:
                f.time_base = time_base
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    if aus is not None:
        n = 0
        seconds = frames / fps
        while n < seconds * 48000:
            t = (np.arange(960) + n) / 48000
            af = av.AudioFrame.from_ndarray((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None],
                                            format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, n
            n += 960
            for p in aus.encode(af):
                out.mux(p)
        for p in aus.encode():
            out.mux(p)
    out.close()
    return path


def read_clip(path: str | Path) -> tuple[list[np.ndarray], list[float], list[str]]:
    """Frames (RGB), their times in seconds, and the stream types of a clip."""
    import av

    with av.open(str(path)) as c:
        types = [s.type for s in c.streams]
        frames, times = [], []
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24"))
            times.append(float(f.time))
    return frames, times, types
