"""Colorizing a sequence of frames (a clip) so that each of the k versions keeps its colours.

A method's :meth:`~colorkit.core.interfaces.Method.sample` colorizes images independently:
run on every frame of a clip, version j of one frame and version j of the next can be
different colorings (and a random mode draws new noise for every frame), so the result
flickers. A :class:`SequenceSampler` colorizes a clip frame by frame, in chunks, keeping
what it chose per *scene*:

* ``observe(grey, scenes)`` (only when ``needs_observe``): a first pass over the clip, for
  samplers that choose from statistics of the whole scene (e.g. the MDN's mean mixture
  weights);
* ``sample(grey, scenes)``: ``(T, 1, H, W)`` grey frames (L / 100) and their scene numbers
  ``(T,)`` -> ``(T, k, 2, H, W)`` ab / 128. Chunks are fed in order; the result does not
  depend on how the clip is cut into chunks.

The default, :class:`FixedDrawSampler`, works for any method: every frame of a scene is
sampled with the same generator state, so the method's random draws (noise, dropout
masks, mixture draws) are the same in every frame of the scene. A new scene starts from a
new state derived from the caller's generator (scene 0 from the caller's state itself, so
the first frame gets exactly what ``sample`` gives it).

Scene cuts (:class:`SceneDetector`): a frame starts a new scene when the histogram of its
grey levels (at the model size, :data:`HIST_BINS` bins) differs from the previous frame's
by more than ``threshold`` in total variation distance (half the L1 distance between the
normalised histograms: 0 for the same histogram, 1 for disjoint ones).
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import Tensor

from colorkit.core.registry import ColorkitError

HIST_BINS = 32
SCENE_THRESHOLD = 0.4
"""Default scene-cut threshold: total variation distance between consecutive frames' grey histograms."""


def grey_histograms(grey: Tensor, bins: int = HIST_BINS) -> Tensor:
    """Normalised histograms ``(T, bins)`` of grey frames ``(T, 1, H, W)`` in [0, 1]."""
    t = grey.shape[0]
    idx = (grey.reshape(t, -1).float().clamp(0, 1) * bins).long().clamp_max(bins - 1)
    h = torch.zeros(t, bins, dtype=torch.float64)
    h.scatter_add_(1, idx.cpu(), torch.ones(idx.shape, dtype=torch.float64))
    return h / h.sum(1, keepdim=True).clamp_min(1)


class SceneDetector:
    """Numbers the scenes of a clip fed in chunks: ``update(grey (T,1,H,W)) -> (T,)`` long.
    ``threshold=None`` (or >= 1) never cuts: the whole clip is one scene."""

    def __init__(self, threshold: float | None = SCENE_THRESHOLD, bins: int = HIST_BINS) -> None:
        if threshold is not None and not 0 < threshold:
            raise ColorkitError(f"the scene-cut threshold must be above 0, got {threshold}")
        self.threshold, self.bins = threshold, bins
        self.prev: Tensor | None = None
        self.scene = 0
        self.cuts: list[int] = []  # frame numbers where a scene starts (after the first)
        self.frames = 0

    def update(self, grey: Tensor) -> Tensor:
        hist = grey_histograms(grey, self.bins)
        out = torch.empty(grey.shape[0], dtype=torch.long)
        for i in range(grey.shape[0]):
            if self.prev is not None and self.threshold is not None:
                if 0.5 * float((hist[i] - self.prev).abs().sum()) > self.threshold:
                    self.scene += 1
                    self.cuts.append(self.frames)
            self.prev = hist[i]
            out[i] = self.scene
            self.frames += 1
        return out


def clone_generator(generator: torch.Generator | None) -> torch.Generator | None:
    """A new generator in ``generator``'s current state (``None`` stays ``None``)."""
    if generator is None:
        return None
    g = torch.Generator(device=generator.device)
    g.set_state(generator.get_state())
    return g


def scene_generator(start_state: Tensor | None, device: Any, scene: int) -> torch.Generator | None:
    """The generator of scene ``scene``: the caller's start state for scene 0, and a seed
    derived from that state and the scene number for the others."""
    if start_state is None:
        return None
    g = torch.Generator(device=device)
    if scene == 0:
        g.set_state(start_state)
    else:
        digest = hashlib.sha256(start_state.numpy().tobytes() + scene.to_bytes(8, "little")).digest()
        g.manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))
    return g


def check_frames(grey: Tensor, scenes: Tensor | None) -> Tensor:
    if not isinstance(grey, Tensor) or grey.dim() != 4 or grey.shape[1] != 1:
        raise ColorkitError(f"a sequence of grey frames must be (T, 1, H, W); got "
                            f"{tuple(grey.shape) if isinstance(grey, Tensor) else type(grey).__name__}")
    if scenes is None:
        return torch.zeros(grey.shape[0], dtype=torch.long)
    scenes = torch.as_tensor(scenes, dtype=torch.long).cpu()
    if scenes.shape != (grey.shape[0],):
        raise ColorkitError(f"scenes must hold one scene number per frame ({grey.shape[0]}); got {tuple(scenes.shape)}")
    return scenes


class SequenceSampler:
    """Colorizes one clip, chunk by chunk (see the module docstring). Subclasses implement
    :meth:`sample_frames`; a sampler that needs a first pass sets ``needs_observe`` and
    implements :meth:`observe_frames`."""

    needs_observe: bool = False

    def __init__(self, method: Any, k: int, *, mode: str | None = None,
                 generator: torch.Generator | None = None) -> None:
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ColorkitError(f"k must be a positive integer, got {k!r}")
        self.method, self.k = method, k
        self.mode = method.check_mode(mode)
        self.device = generator.device if generator is not None else torch.device("cpu")
        self.start_state = generator.get_state() if generator is not None else None

    def generator_for(self, scene: int) -> torch.Generator | None:
        return scene_generator(self.start_state, self.device, scene)

    def observe(self, grey: Tensor, scenes: Tensor | None = None) -> None:
        scenes = check_frames(grey, scenes)
        if self.needs_observe:
            self.observe_frames(grey, scenes)

    def observe_frames(self, grey: Tensor, scenes: Tensor) -> None:  # pragma: no cover - overridden
        raise ColorkitError(f"{type(self).__name__} sets needs_observe but does not implement observe_frames")

    def sample(self, grey: Tensor, scenes: Tensor | None = None, *, meta: list[Any] | None = None) -> Tensor:
        scenes = check_frames(grey, scenes)
        if meta is not None and len(meta) != grey.shape[0]:
            raise ColorkitError(f"meta must hold one record per frame ({grey.shape[0]}); got {len(meta)}")
        if grey.shape[0] == 0:
            return torch.zeros(0, self.k, 2, *grey.shape[-2:])
        return self.sample_frames(grey, scenes, meta)

    def sample_frames(self, grey: Tensor, scenes: Tensor, meta: list[Any] | None) -> Tensor:
        raise NotImplementedError


class FixedDrawSampler(SequenceSampler):
    """The default: every frame of a scene is sampled alone with the scene's generator
    state, so random draws repeat from frame to frame (deterministic modes are unchanged)."""

    def sample_frames(self, grey: Tensor, scenes: Tensor, meta: list[Any] | None) -> Tensor:
        outs = []
        for i in range(grey.shape[0]):
            extra = {"meta": [meta[i]]} if meta is not None else {}
            outs.append(self.method.sample(grey[i : i + 1], self.k, mode=self.mode,
                                           generator=self.generator_for(int(scenes[i])), **extra)[0])
        return torch.stack(outs)
