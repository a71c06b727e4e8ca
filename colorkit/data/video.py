"""Reading and writing clips: video files through PyAV (FFmpeg), or folders of numbered frames.

PyAV is the optional ``video`` extra (``pip install 'colorkit[video]'``); without it every
video function raises a one-line error naming the extra. Reading:

* :func:`probe` checks a clip before anything is written: a file that is not a video (or
  is damaged so that no frame decodes), a file without a video track, or one without
  frames is a one-line error;
* :func:`iter_frames` yields every frame as 8-bit RGB ``(H, W, 3)`` upright (a rotation in
  the file's display matrix is applied), with its presentation time, so a clip with a
  variable frame rate keeps its timing; 10-bit and other pixel formats are converted by
  FFmpeg. A stream cut short ends at its last decodable frame.

Writing (:mod:`colorkit.data.video_write`, whose names are also importable from here):
:class:`VideoWriter`, :class:`FrameFolderWriter`, :func:`check_output`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core.registry import ColorkitError
from colorkit.core.regular import check_regular
from colorkit.data.images import IMAGE_EXTENSIONS
from colorkit.data.video_write import (  # noqa: F401 - the writers, also reachable from here
    CONTAINERS,
    FrameFolderWriter,
    VideoWriter,
    check_output,
    require_av,
)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
"""Files read as clips (a ``.gif`` only when it has more than one frame)."""
DEFAULT_FPS = 24
"""Frame rate given to a folder of numbered frames unless another is given."""
MAX_FPS = 1000
"""Highest frame rate accepted for a folder of numbered frames."""


def is_clip(path: str | Path) -> bool:
    """Whether ``path`` names a video file (by extension; a GIF only when animated)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in VIDEO_EXTENSIONS or p.is_dir():
        return False
    if suffix != ".gif":
        return True
    try:
        from PIL import Image

        with Image.open(p) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:  # noqa: BLE001 - not readable as a GIF: the image path reports it
        return False


def numbered_frames(folder: str | Path) -> list[Path]:
    """The image files directly in ``folder``, ordered by the last number in their names
    (``frame_2.png`` before ``frame_10.png``); a one-line error when there are none."""
    folder = Path(folder)
    files = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    numbered = [(int(m[-1]), p.name, p) for p in files if (m := re.findall(r"\d+", p.stem))]
    if not numbered:
        raise ColorkitError(f"no numbered frames in {folder} (expected image files such as frame_0001.png)")
    return [p for _, _, p in sorted(numbered)]


@dataclass
class VideoInfo:
    """What :func:`probe` found. ``width`` and ``height`` are as displayed (rotation
    applied); ``fps`` is the average frame rate; ``frames`` the count the header states
    (``None`` when it does not); ``rotation``: degrees counter-clockwise applied to
    decoded frames to display them."""

    path: Path
    kind: str  # "file" or "frames"
    width: int
    height: int
    fps: Fraction
    frames: int | None
    rotation: int = 0
    audio: bool = False
    codec: str = ""
    pix_fmt: str = ""
    files: list[Path] = field(default_factory=list)
    time_base: Fraction = Fraction(0)
    """Of every frame's ``pts`` (:func:`iter_frames`): the stream's, or ``1 / fps`` for frames."""

    @property
    def suffix(self) -> str:
        return self.path.suffix.lower() if self.kind == "file" else ""


@dataclass
class Frame:
    """One decoded frame: ``rgb`` ``(H, W, 3)`` uint8, its number and presentation time
    (``pts`` in units of ``time_base`` seconds)."""

    index: int
    rgb: np.ndarray
    pts: int
    time_base: Fraction


def _open(path: Path, options: dict[str, str] | None = None) -> Any:
    av = require_av()
    try:
        check_regular(path)  # a FIFO or a device is never opened
    except FileNotFoundError:
        raise ColorkitError(f"cannot read video {path}: no such file") from None
    except OSError as exc:
        raise ColorkitError(f"cannot read video {path}: {exc.strerror or exc}") from None
    if path.stat().st_size == 0:
        raise ColorkitError(f"cannot read video {path}: the file is empty")
    try:
        return av.open(str(path), options=options)
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ColorkitError(f"cannot read video {path}: not a video file, or a damaged one "
                            f"({' '.join(str(exc).split())})") from None


def check_fps(fps: float | None) -> Fraction:
    """The frame rate of a folder of frames: ``fps`` (default :data:`DEFAULT_FPS`), a
    finite number above 0 and at most :data:`MAX_FPS`; else a one-line error."""
    if fps is None:
        return Fraction(DEFAULT_FPS)
    try:
        ok = math.isfinite(fps) and 0 < fps <= MAX_FPS
    except TypeError:
        ok = False
    rate = Fraction(fps).limit_denominator(1001) if ok else Fraction(0)
    if rate <= 0:
        raise ColorkitError(f"--fps must be a number above 0 and at most {MAX_FPS}, got {fps}")
    return rate


def _check_pixels(path: Path, width: int, height: int, max_pixels: int | None) -> None:
    from colorkit.data.imageio import MAX_PIXELS

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if width * height > limit:
        raise ColorkitError(f"{path} is {width}x{height} = {width * height:,} pixels per frame; the limit is "
                            f"{limit:,} (raise it with --max-pixels)")


def probe(path: str | Path, fps: float | None = None, max_pixels: int | None = None) -> VideoInfo:
    """Check a clip (a video file or a folder of numbered frames) and describe it. ``fps``
    is the frame rate of a folder of frames (default :data:`DEFAULT_FPS`) and is not allowed
    for a video file, which states its own. A clip larger than ``max_pixels`` per frame
    (default :data:`colorkit.data.imageio.MAX_PIXELS`) is refused from the size its header
    states, before any frame is decoded; then its first frame is decoded."""
    path = Path(path)
    if path.is_dir():
        from colorkit.data.imageio import image_size

        rate = check_fps(fps)
        files = numbered_frames(path)
        w, h = image_size(files[0], max_pixels)
        return VideoInfo(path, "frames", w, h, rate, len(files), files=files, time_base=1 / rate)
    if fps is not None:
        raise ColorkitError(f"--fps is for a folder of frames; {path} states its own frame rate")
    # skip_frame=all: FFmpeg reads the streams' parameters without decoding a frame (a
    # 16000x16000 clip would otherwise be decoded while it is opened); decoding below is not affected.
    with _open(path, options={"skip_frame": "all"}) as container:
        if not container.streams.video:
            raise ColorkitError(f"cannot colorize {path}: it has no video track (or only an empty one)")
        stream = container.streams.video[0]
        _check_pixels(path, int(stream.width or 0), int(stream.height or 0), max_pixels)
        try:
            first = next(iter(container.decode(stream)), None)
        except Exception:  # noqa: BLE001 - FFmpeg decoding errors of a damaged file
            first = None
        if first is None:
            raise ColorkitError(f"cannot colorize {path}: its video track has no decodable frames (empty, truncated "
                                "or damaged)")
        rot = _rotation(first)
        w, h = (first.height, first.width) if rot % 180 else (first.width, first.height)
        _check_pixels(path, w, h, max_pixels)  # a header that did not state the size
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(DEFAULT_FPS)
        return VideoInfo(path, "file", w, h, Fraction(rate), int(stream.frames) or None, rotation=rot,
                         audio=bool(container.streams.audio), codec=stream.codec_context.name,
                         pix_fmt=first.format.name,
                         time_base=Fraction(stream.time_base) if stream.time_base else 1 / Fraction(rate))


def content_sha256(info: VideoInfo) -> str:
    """sha256 of what the clip is: the video file's bytes, or, for a folder of frames, the
    frames' names in order with each frame's sha256."""

    def file_digest(p: Path) -> str:
        h = hashlib.sha256()
        try:
            with open(p, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except OSError as exc:
            raise ColorkitError(f"cannot read {p}: {exc.strerror or exc}") from None
        return h.hexdigest()

    if info.kind == "file":
        return file_digest(info.path)
    h = hashlib.sha256()
    for p in info.files:
        h.update(f"{p.name}\0{file_digest(p)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _rotation(frame: Any) -> int:
    rot = int(round(getattr(frame, "rotation", 0) or 0))
    return (rot // 90 * 90) % 360


def iter_frames(info: VideoInfo, max_pixels: int | None = None) -> Iterator[Frame]:
    """Every frame of the clip ``info`` describes, in order (see the module docstring)."""
    _check_pixels(info.path, info.width, info.height, max_pixels)
    tb = info.time_base or Fraction(1) / info.fps
    if info.kind == "frames":
        from colorkit.data.imageio import open_image

        for i, p in enumerate(info.files):
            img = open_image(p, max_pixels)
            if img.size != (info.width, info.height):
                raise ColorkitError(f"frame {p} is {img.width}x{img.height}; the clip's frames are "
                                    f"{info.width}x{info.height}")
            yield Frame(i, np.asarray(img), i, tb)
        return
    av = require_av()
    with _open(info.path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        last = None
        i = 0
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except (av.error.FFmpegError, OSError):  # a damaged tail: the stream ends here
                break
            rgb = frame.to_ndarray(format="rgb24")
            rot = _rotation(frame)
            if rot:
                rgb = np.ascontiguousarray(np.rot90(rgb, rot // 90))
            if rgb.shape[:2] != (info.height, info.width):
                raise ColorkitError(f"{info.path}: frame {i} is {rgb.shape[1]}x{rgb.shape[0]}, the clip started at "
                                    f"{info.width}x{info.height}; a clip that changes size is not supported")
            if frame.pts is None:  # no time stamp: one frame period after the last
                pts = 0 if last is None else last + max(1, round(1 / (info.fps * tb)))
            else:
                ftb = Fraction(frame.time_base) if frame.time_base else tb
                pts = int(frame.pts) if ftb == tb else round(frame.pts * ftb / tb)
            if last is not None and pts <= last:  # repeated or out-of-order stamps: keep them increasing
                pts = last + 1
            last = pts
            yield Frame(i, rgb, pts, tb)
            i += 1
