"""A trained method ready to colorize: :class:`Colorizer` and :func:`load`.

:func:`load` reads a run directory (its format and checks: :func:`colorkit.train.runs.read_run`)
or, without one, the bundled demo model; the :class:`Colorizer` samples colour fields at the
model size (:meth:`Colorizer.sample`) and colorizes photos (:mod:`colorkit.inference.photo`)
and clips (:mod:`colorkit.inference.clip`) at their own resolution.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from colorkit.core.checkpoint import load_method_checkpoint, resolve_dir
from colorkit.core.interfaces import Method
from colorkit.core.registry import ColorkitError
from colorkit.inference.photo import check_k
from colorkit.train.components import check_components_installed
from colorkit.train.config import SampleConfig
from colorkit.train.engine import resolve_device
from colorkit.train.runs import read_run

DEMO_MODEL_DIR = Path(__file__).parents[1] / "models" / "demo-mdn"
"""The bundled demo model: the ``mdn`` method, ``small`` preset, trained on the 312 shipped
demo photos at 64x64 (weights stored in half precision; built by
``scripts/build_demo_model.py``). A model of a small demo set, not of the world's photos."""
DEMO_MODEL_NOTE = ("the bundled demo model (mdn, small preset) was trained only on ~300 small (64x64) demo photos; "
                   "train your own for real use")


class Colorizer:
    """A trained method loaded from a run directory: ``colorize(image, k)``. Without a run
    directory, the bundled demo model (:data:`DEMO_MODEL_DIR`)."""

    bundled: bool
    """Whether this is the bundled demo model."""
    run_dir: Path
    info: dict[str, Any]
    """The run's ``run.json`` (checked by :func:`colorkit.train.runs.read_run`)."""
    device: torch.device
    method: Method
    size: int
    """The side of the model's square input (``dataset.size`` of run.json; 64 by default)."""
    sampling: SampleConfig
    """The sampling settings it was loaded with: ``mode`` (``None``: the method's default)
    and ``options``."""

    def __init__(self, run_dir: str | Path | None = None, device: str = "auto",
                 options: dict[str, Any] | None = None) -> None:
        """``options``: sampling settings, ``{"mode": ..., <a field in the method's sample_options>: ...}``
        (``--option`` of ``colorkit colorize`` and ``bench``)."""
        self.bundled = run_dir is None
        self.run_dir = DEMO_MODEL_DIR if run_dir is None else Path(run_dir)
        if self.bundled and not (self.run_dir / "run.json").is_file():
            raise ColorkitError(f"the bundled demo model is missing from this installation ({self.run_dir}); "
                                "reinstall colorkit or give a run directory")
        self.info = read_run(self.run_dir)
        self.device = resolve_device(device)
        check_components_installed(self.info, self.run_dir)
        self.method = load_method_checkpoint(self.run_dir, kind="method", name=self.info["method"],
                                             map_location=self.device)
        self.method.eval()
        self.method.stats = self.method.stats.to(self.device)
        self.size = int(self.info["dataset"]["size"])
        self._check_size()
        self.sampling = SampleConfig.from_options(options or {})
        if self.sampling.mode is not None:
            self.method.check_mode(self.sampling.mode)
        self.method.configure_sampling(**self.sampling.options)

    def _check_size(self) -> None:
        """``dataset.size`` of run.json is the side the weights were trained at: the colour
        statistics' (their PCA basis has its shape) and the config's ``image_size``."""
        sizes = {}
        stats_size = self.method.stats.image_size
        if isinstance(stats_size, int):
            sizes["stats.safetensors"] = stats_size
        config_size = getattr(self.method.config, "image_size", None)  # a field of some methods' configs only
        if isinstance(config_size, int):
            sizes["model.json's image_size"] = config_size
        wrong = {where: v for where, v in sizes.items() if v != self.size}
        if wrong:
            said = ", ".join(f"{where} says {v}" for where, v in wrong.items())
            raise ColorkitError(f"{self.run_dir / 'run.json'}: dataset.size {self.size} does not match the weights "
                                f"({said}); refusing a run that does not add up")

    @property
    def name(self) -> str:
        return self.info["method"]

    @property
    def takes_hints(self) -> bool:
        """Whether the method itself takes colour hints (any other gets them through the
        generic fallback of :func:`colorkit.core.hints.sample_with_hints`)."""
        return bool(self.method.takes_hints)

    @property
    def sample_modes(self) -> tuple[str, ...]:
        """The method's sampling modes (the first is its default)."""
        return tuple(self.method.sample_modes)

    @property
    def label(self) -> str:
        """What to call this model in messages: ``demo model (mdn)`` or the run directory."""
        return f"demo model ({self.name})" if self.bundled else f"{self.run_dir} ({self.name})"

    def weights_sha256(self) -> str:
        """sha256 of the weights file: the model's identity, wherever the run directory is."""
        import hashlib

        h = hashlib.sha256()
        with open(resolve_dir(self.run_dir) / "model.safetensors", "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()

    @torch.no_grad()
    def sample(self, grey: torch.Tensor, k: int = 5, *, mode: str | None = None, seed: int = 0,
               hints: torch.Tensor | None = None) -> torch.Tensor:
        """``grey`` (B,1,s,s) at the model size -> ab (B,k,2,s,s), ab/128. ``hints``: a hint
        map (B,3,s,s) (:func:`colorkit.core.hints.hint_map`); ``None``: no hints."""
        from colorkit.core.hints import sample_with_hints

        check_k(k)
        gen = torch.Generator(device=self.device).manual_seed(seed)
        ab = sample_with_hints(self.method, grey.to(self.device), k, hints=hints, mode=mode or self.sampling.mode,
                               generator=gen)
        want = (grey.shape[0], k, 2, *grey.shape[-2:])
        if not isinstance(ab, torch.Tensor) or tuple(ab.shape) != want:
            from colorkit.core.plugin_manager import registry

            raise ColorkitError(f"method {self.name!r} of {registry('method').get(self.name).source} gave samples of "
                                f"shape {tuple(getattr(ab, 'shape', ())) or type(ab).__name__} for k={k}, expected "
                                f"{want} (B, k, 2, H, W)")
        if not bool(torch.isfinite(ab).all()):
            raise ColorkitError(f"{self.label} produced NaN or infinite colours with these sampling settings "
                                f"(mode {mode or self.sampling.mode!r}, {self.sampling.options or 'no options'}); "
                                "nothing was written")
        return ab

    @torch.no_grad()
    def colorize(self, image: Any, k: int = 5, *, mode: str | None = None, seed: int = 0,
                 output: str = "images", max_pixels: int | None = None, hints: Any = None) -> Any:
        """Colorize one image (path, PIL image, or uint8 HxWx3 / HxW array) at its own
        resolution: the predicted ab is upsampled and joined with the input's L channel.

        ``output="images"``: a list of ``k`` PIL images; ``"tensors"``: RGB ``(k, 3, H, W)``
        in [0, 1]. Both hold all k at once: for large photos use :meth:`iter_colorize`.
        Images above ``max_pixels`` (default 50 megapixels) are refused. ``hints``: colour
        points of the photo, a list of :class:`colorkit.Hint` (or their JSON form, a list
        of ``{"x", "y", "color"}``), in the photo's own pixels."""
        from colorkit.inference.photo import colorize_full_resolution

        return colorize_full_resolution(self, image, k=k, mode=mode, seed=seed, output=output,
                                        max_pixels=max_pixels, hints=hints)

    def iter_colorize(self, image: Any, k: int = 5, *, mode: str | None = None, seed: int = 0,
                      max_pixels: int | None = None, hints: Any = None) -> Any:
        """The same colorizations as :meth:`colorize`, one PIL image at a time (memory
        independent of k)."""
        from colorkit.inference.photo import iter_colorizations

        return iter_colorizations(self, image, k=k, mode=mode, seed=seed, max_pixels=max_pixels, hints=hints)

    def colorize_video(self, source: str | Path, k: int = 5, *, mode: str | None = None, seed: int = 0,
                       fps: float | None = None, scene_threshold: float | None = None,
                       max_pixels: int | None = None) -> Any:
        """The ``k`` versions of a clip (a video file, or a folder of numbered frames at
        ``fps``), each consistent from frame to frame: an iterator of frames, each with
        ``versions[j]`` (``(H, W, 3)`` uint8 RGB at the clip's resolution). Write them with
        :class:`colorkit.data.video.VideoWriter`; ``colorkit colorize clip.mp4`` (or
        :func:`colorkit.colorize_clip`) does it all. Needs the ``video`` extra for video files. ``scene_threshold``: see
        :class:`colorkit.core.sequence.SceneDetector` (default 0.4)."""
        from colorkit.core.sequence import SCENE_THRESHOLD
        from colorkit.inference.clip import VideoColorization

        return VideoColorization(self, source, k=k, mode=mode, seed=seed, fps=fps, max_pixels=max_pixels,
                                 scene_threshold=SCENE_THRESHOLD if scene_threshold is None else scene_threshold)


def load(run_dir: str | Path | None = None, device: str = "auto",
         options: dict[str, Any] | None = None) -> Colorizer:
    """``colorkit.load(run_dir).colorize(image, k=5)``; ``colorkit.load()`` is the bundled
    demo model (see :data:`DEMO_MODEL_DIR`); ``options``: sampling settings
    (``{"mode": "mixture", "variance": 0.05}``, see :class:`Colorizer`)."""
    return Colorizer(run_dir, device=device, options=options)
