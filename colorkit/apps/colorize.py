"""What ``colorkit colorize IMAGES`` does with its inputs, in one place: :func:`colorize_inputs`
tells a clip, a folder or glob and single photos apart, checks the options that go with
each, and hands them to :mod:`colorkit.apps.video`, :mod:`colorkit.apps.folder` or
:mod:`colorkit.apps.photos`. The command line only parses its options into a
:class:`Request`; the inputs go down from here and never back up to it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorkit.apps.hintfiles import command_line_hints
from colorkit.apps.sources import is_pattern
from colorkit.core.registry import ColorkitError
from colorkit.core.sequence import SCENE_THRESHOLD
from colorkit.data.imageio import MAX_PIXELS
from colorkit.data.video import is_clip, probe
from colorkit.inference.output import OutputFormat, output_format

__all__ = ["Request", "colorize_inputs"]


@dataclass
class Request:
    """The inputs and settings of one ``colorkit colorize`` (its options, parsed)."""

    images: list[str]
    run_dir: str | None = None
    k: int = 5
    out: str | Path = "colorized"
    mode: str | None = None
    seed: int = 0
    device: str = "auto"
    max_pixels: int | None = MAX_PIXELS
    batch_size: int = 8
    fmt_name: str | None = None
    quality: int | None = None
    as_frames: bool = False
    fps: float | None = None
    container: str | None = None
    scene_threshold: float | None = SCENE_THRESHOLD
    hint_args: list[str] = field(default_factory=list)
    hints_path: str | None = None
    progress: bool = True
    options: dict[str, Any] = field(default_factory=dict)


def colorize_inputs(req: Request, *, echo: Callable[[str], Any] = print,
                    note: Callable[[str], Any] = print) -> None:
    """Colorize ``req.images``: one clip (or a folder of frames with ``as_frames``), one folder
    or glob, or photos. ``echo``: the summary lines; ``note``: progress notes and the
    bundled model's note. A wrong combination of inputs and options is a
    :class:`~colorkit.core.registry.ColorkitError` before any model loads."""
    images = req.images
    clips = [p for p in images if is_clip(p)]
    hinted = bool(req.hint_args) or req.hints_path is not None
    if req.as_frames or clips:
        what = images[0] if req.as_frames else clips[0]
        if hinted:
            raise ColorkitError(f"--hint and --hints are for photos; {what} is a clip (colour hints are not taken "
                                "for videos or folders of frames)")
        if req.fmt_name is not None or req.quality is not None:
            raise ColorkitError(f"--format and --quality are for photos; a clip's versions are written in the clip's "
                                f"own kind of file ({what})")
        if len(images) > 1:
            raise ColorkitError(f"a clip must be the only IMAGES argument (got {len(images)} arguments, including "
                                f"{what})")
        if req.as_frames and not Path(images[0]).is_dir():
            raise ColorkitError(f"--frames needs a folder of numbered frames; {images[0]} is not a folder")
        _clip(req, images[0], echo, note)
        return
    if req.fps is not None:
        raise ColorkitError("--fps is for a folder of frames given with --frames")
    if req.container is not None:
        raise ColorkitError("--container is for clips; photos take --format")
    fmt = output_format(req.fmt_name or "png", req.quality)

    patterns = [p for p in images if is_pattern(p)]
    if hinted and patterns:
        raise ColorkitError(f"--hint and --hints are for one photo (their points are its pixels), not a folder or "
                            f"glob ({patterns[0]}); put each photo's hints in NAME.hints.json beside NAME.jpg")
    if hinted and len(images) > 1:
        raise ColorkitError(f"--hint and --hints are for one photo (their points are its pixels), not {len(images)}; "
                            "colorize each photo with its own hints, or put them in NAME.hints.json beside "
                            "NAME.jpg in a folder")
    hints = command_line_hints(req.hint_args, req.hints_path) if hinted else None
    if patterns:
        if len(images) > 1:
            raise ColorkitError(f"a folder or glob must be the only IMAGES argument (got {len(images)} arguments, "
                                f"including {patterns[0]}); quote a glob so that colorkit expands it")
        _folder(req, images[0], fmt, echo, note)
        return
    _photos(req, fmt, hints or None, echo, note)


def _load(req: Request) -> Any:
    from colorkit.inference import load

    return load(req.run_dir, device=req.device, options=req.options)


def _photos(req: Request, fmt: OutputFormat, hints: Any, echo: Callable[[str], Any],
            note: Callable[[str], Any]) -> None:
    from colorkit.apps.photos import check_photos, colorize_photos

    first = check_photos(req.images, req.out, hints=hints, max_pixels=req.max_pixels)  # before the model loads
    colorizer = _load(req)
    colorize_photos(colorizer, req.images, req.out, k=req.k, mode=req.mode, seed=req.seed, max_pixels=req.max_pixels,
                    fmt=fmt, hints=hints, first=first, echo=echo)
    _note_demo(colorizer, note)


def _folder(req: Request, arg: str, fmt: OutputFormat, echo: Callable[[str], Any],
            note: Callable[[str], Any]) -> None:
    from colorkit.apps.folder import colorize_folder, summary_lines

    colorizer = _load(req)
    record = colorize_folder(colorizer, arg, req.out, k=req.k, mode=req.mode, seed=req.seed,
                             max_pixels=req.max_pixels, batch_size=req.batch_size, fmt=fmt, progress=req.progress,
                             echo=note)
    for line in summary_lines(record, Path(req.out)):
        echo(line)
    _note_demo(colorizer, note)


def _clip(req: Request, source: str, echo: Callable[[str], Any], note: Callable[[str], Any]) -> None:
    from colorkit.apps.video import check_clip_output, colorize_clip, summary_lines

    info = probe(source, req.fps, req.max_pixels)  # a bad clip fails before the model loads (before any decoding)
    check_clip_output(info, Path(source), Path(req.out), req.container)
    colorizer = _load(req)
    record = colorize_clip(colorizer, source, req.out, k=req.k, mode=req.mode, seed=req.seed, fps=req.fps,
                           scene_threshold=req.scene_threshold, max_pixels=req.max_pixels, container=req.container,
                           progress=req.progress, echo=note)
    if "made" in record and not record.get("already_done"):
        for line in summary_lines(record, Path(req.out)):
            echo(line)
    _note_demo(colorizer, note)


def _note_demo(colorizer: Any, note: Callable[[str], Any]) -> None:
    if colorizer.bundled:
        from colorkit.inference.colorizer import DEMO_MODEL_NOTE

        note(f"colorkit: note: {DEMO_MODEL_NOTE}")
