"""k versions of a clip, frame by frame: ``colorkit.load(run).colorize_video(path, k=5)``.

The pipeline streams: frames are decoded (:func:`colorkit.data.video.iter_frames`), taken
in chunks of ``chunk`` frames to the model size (each frame resized straight to the
model's square, as a photo is, and its L / 100 taken), numbered by scene
(:class:`colorkit.core.sequence.SceneDetector`), colorized by the method's
:meth:`~colorkit.core.interfaces.Method.sequence_sampler` and composed at the frame's own
resolution with the frame's own lightness (:mod:`colorkit.data.compose`). Nothing is kept
from one chunk to the next but the sampler's and the scene detector's small state. A
sampler that chooses from whole scenes
(``needs_observe``, e.g. the MDN's) gets a first pass over the clip at the model size:
the clip is decoded twice.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from PIL import Image

from colorkit.core import loadwatch
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SCENE_THRESHOLD, SceneDetector
from colorkit.data.compose import compose_frame, frame_lightness
from colorkit.data.imageio import model_grey
from colorkit.data.video import Frame, VideoInfo, iter_frames, probe
from colorkit.inference.photo import check_k

if TYPE_CHECKING:
    from colorkit.core.sequence import SequenceSampler
    from colorkit.inference.protocol import LoadedModel


@dataclass
class ColorizedFrame:
    """One frame of the clip and its colorizations: ``versions[j]`` is version ``j``'s
    frame ``(H, W, 3)`` uint8 RGB (for the versions asked for; ``None`` for the others),
    ``ab`` the k colour fields at the model size ``(k, 2, s, s)`` (ab / 128), ``rgb`` the
    input frame, ``scene`` its scene number; ``pts`` in ``time_base`` seconds."""

    index: int
    pts: int
    time_base: Fraction
    scene: int
    rgb: np.ndarray
    ab: torch.Tensor
    versions: list[np.ndarray | None]

    def compose(self, j: int) -> np.ndarray:
        """Version ``j`` of this frame (composed now if it was not asked for)."""
        got = self.versions[j]
        return got if got is not None else compose_frame(frame_lightness(self.rgb), self.ab, [j])[0]


@dataclass
class Timings:
    """Seconds spent per stage (decode: reading and decoding frames, both passes, and
    taking them to the model size; model: the sampler; compose: full-resolution frames)."""

    decode: float = 0.0
    model: float = 0.0
    compose: float = 0.0
    frames: int = 0
    passes: int = 0
    cpu: dict[str, float] = field(default_factory=lambda: {"decode": 0.0, "model": 0.0, "compose": 0.0})
    """CPU seconds of the process (all its threads) per stage: on a machine shared with
    other work, what the stage would take on an idle core."""

    def add(self, stage: str, wall0: float, cpu0: float) -> None:
        setattr(self, stage, getattr(self, stage) + time.perf_counter() - wall0)
        self.cpu[stage] += time.process_time() - cpu0


class VideoColorization:
    """The k versions of a clip, as an iterator of :class:`ColorizedFrame` (see the module
    docstring). ``versions``: which versions to compose (default all k); ``fps``: for a
    folder of numbered frames. Iterating again runs the pipeline again."""

    def __init__(self, colorizer: LoadedModel, source: str | Path, *, k: int = 5, mode: str | None = None,
                 seed: int = 0, fps: float | None = None, scene_threshold: float | None = SCENE_THRESHOLD,
                 chunk: int = 8, versions: list[int] | None = None, max_pixels: int | None = None) -> None:
        check_k(k)
        if chunk < 1:
            raise ColorkitError(f"chunk must be at least 1, got {chunk}")
        self.colorizer, self.k, self.seed, self.chunk = colorizer, k, seed, chunk
        self.mode = mode or colorizer.sampling.mode
        self.scene_threshold = scene_threshold
        self.versions = list(range(k)) if versions is None else sorted(set(versions))
        if any(not 0 <= j < k for j in self.versions):
            raise ColorkitError(f"versions must be between 0 and {k - 1}, got {versions}")
        self.max_pixels = max_pixels
        self.info: VideoInfo = probe(source, fps, max_pixels)  # the size is checked before any frame is decoded
        self.timings = Timings()
        self.scene_cuts: list[int] = []
        self.sampler = self._sampler()  # checks k and mode before anything is decoded

    def _sampler(self) -> SequenceSampler:
        c = self.colorizer
        gen = torch.Generator(device=c.device).manual_seed(self.seed)
        return c.method.sequence_sampler(self.k, mode=self.mode, generator=gen)

    def _chunks(self) -> Iterator[tuple[list[Frame], torch.Tensor]]:
        """Decoded frames in chunks, with their model-size grey ``(T, 1, s, s)``."""
        t0, c0 = time.perf_counter(), time.process_time()
        frames: list[Frame] = []
        greys: list[torch.Tensor] = []
        for f in iter_frames(self.info, self.max_pixels):
            frames.append(f)
            greys.append(model_grey(Image.fromarray(f.rgb), self.colorizer.size))
            if len(frames) == self.chunk:
                self.timings.add("decode", t0, c0)
                yield frames, torch.cat(greys)
                t0, c0 = time.perf_counter(), time.process_time()
                frames, greys = [], []
        self.timings.add("decode", t0, c0)
        if frames:
            yield frames, torch.cat(greys)

    def __iter__(self) -> Iterator[ColorizedFrame]:
        sampler = self._sampler()
        device = self.colorizer.device
        self.timings = Timings()
        if sampler.needs_observe:
            detector = SceneDetector(self.scene_threshold)
            for _frames, grey in self._chunks():
                loadwatch.checkpoint()  # fewer threads while other jobs hold the cores (a no-op without a watch)
                t0, c0 = time.perf_counter(), time.process_time()
                sampler.observe(grey.to(device), detector.update(grey))
                self.timings.add("model", t0, c0)
            self.timings.passes += 1
        detector = SceneDetector(self.scene_threshold)
        n = 0
        for frames, grey in self._chunks():
            loadwatch.checkpoint()
            t0, c0 = time.perf_counter(), time.process_time()
            scenes = detector.update(grey)
            with torch.no_grad():
                ab = sampler.sample(grey.to(device), scenes).float().cpu()  # (T, k, 2, s, s)
            self.timings.add("model", t0, c0)
            for f, a, s in zip(frames, ab, scenes.tolist()):
                t0, c0 = time.perf_counter(), time.process_time()
                outs: list[np.ndarray | None] = [None] * self.k
                if self.versions:
                    for j, o in zip(self.versions, compose_frame(frame_lightness(f.rgb), a, self.versions)):
                        outs[j] = o
                self.timings.add("compose", t0, c0)
                n += 1
                self.timings.frames = n
                yield ColorizedFrame(f.index, f.pts, f.time_base, s, f.rgb, a, outs)
        self.timings.passes += 1
        self.scene_cuts = list(detector.cuts)
        if n == 0:
            raise ColorkitError(f"cannot colorize {self.info.path}: no frame could be decoded")
