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

Writing: :class:`VideoWriter` encodes RGB frames (H.264 in ``.mp4``, ``.mov`` and
``.mkv``; VP9 in ``.webm``; MPEG-4 part 2 in ``.avi``), copies the audio stream of a
source clip, and writes into a temporary file beside the target that is renamed only by
:meth:`VideoWriter.close`: no half-written file ever has the final name.
:class:`FrameFolderWriter` does the same for a folder of PNG frames.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core import fs
from colorkit.core.registry import ColorkitError
from colorkit.data.images import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".gif")
"""Files read as clips (a ``.gif`` only when it has more than one frame)."""
DEFAULT_FPS = 24
"""Frame rate given to a folder of numbered frames unless another is given."""
_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}


def require_av() -> Any:
    """The ``av`` module, or a one-line error naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise ColorkitError("colorizing video needs PyAV, which is not installed: pip install 'colorkit[video]'") \
            from None
    return av


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


def _open(path: Path) -> Any:
    av = require_av()
    if not path.is_file():
        raise ColorkitError(f"cannot read video {path}: no such file")
    if path.stat().st_size == 0:
        raise ColorkitError(f"cannot read video {path}: the file is empty")
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ColorkitError(f"cannot read video {path}: not a video file, or a damaged one "
                            f"({' '.join(str(exc).split())})") from None


def probe(path: str | Path, fps: float | None = None) -> VideoInfo:
    """Check a clip (a video file or a folder of numbered frames) and describe it; decodes
    its first frame. ``fps`` is the frame rate of a folder of frames (default
    :data:`DEFAULT_FPS`) and is not allowed for a video file, which states its own."""
    path = Path(path)
    if path.is_dir():
        from colorkit.data.imageio import image_size

        files = numbered_frames(path)
        w, h = image_size(files[0])
        rate = Fraction(fps if fps is not None else DEFAULT_FPS).limit_denominator(1001)
        if rate <= 0:
            raise ColorkitError(f"--fps must be above 0, got {fps}")
        return VideoInfo(path, "frames", w, h, rate, len(files), files=files, time_base=1 / rate)
    if fps is not None:
        raise ColorkitError(f"--fps is for a folder of frames; {path} states its own frame rate")
    with _open(path) as container:
        if not container.streams.video:
            raise ColorkitError(f"cannot colorize {path}: it has no video track (or only an empty one)")
        stream = container.streams.video[0]
        try:
            first = next(iter(container.decode(stream)), None)
        except Exception:  # noqa: BLE001 - FFmpeg decoding errors of a damaged file
            first = None
        if first is None:
            raise ColorkitError(f"cannot colorize {path}: its video track has no decodable frames (empty, truncated "
                                "or damaged)")
        rot = _rotation(first)
        w, h = (first.height, first.width) if rot % 180 else (first.width, first.height)
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate or Fraction(DEFAULT_FPS)
        return VideoInfo(path, "file", w, h, Fraction(rate), int(stream.frames) or None, rotation=rot,
                         audio=bool(container.streams.audio), codec=stream.codec_context.name,
                         pix_fmt=first.format.name,
                         time_base=Fraction(stream.time_base) if stream.time_base else 1 / Fraction(rate))


def _rotation(frame: Any) -> int:
    rot = int(round(getattr(frame, "rotation", 0) or 0))
    return (rot // 90 * 90) % 360


def iter_frames(info: VideoInfo, max_pixels: int | None = None) -> Iterator[Frame]:
    """Every frame of the clip ``info`` describes, in order (see the module docstring)."""
    from colorkit.data.imageio import MAX_PIXELS

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if info.width * info.height > limit:
        raise ColorkitError(f"{info.path} is {info.width}x{info.height} = {info.width * info.height:,} pixels per "
                            f"frame; the limit is {limit:,} (raise it with --max-pixels)")
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


class VideoWriter:
    """Encode RGB frames into ``path`` (codec from its extension, see the module
    docstring), copying the audio of ``audio_from`` (a video file) when it has any.
    ``time_base``: of the ``pts`` given to :meth:`write` (default ``1 / fps``). Use as a
    context manager, or call :meth:`close` (rename into place) or :meth:`abort`."""

    def __init__(self, path: str | Path, *, width: int, height: int, fps: Fraction | float,
                 time_base: Fraction | None = None, audio_from: str | Path | None = None,
                 crf: int = 18, preset: str = "veryfast") -> None:
        av = require_av()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in _CODECS:
            raise ColorkitError(f"cannot write video {self.path}: expected one of {', '.join(_CODECS)}")
        self._file = fs.AtomicFile(self.path, suffix=suffix)
        self.tmp = self._file.tmp
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self.width, self.height = width, height
        self.frames, self._last_pts, self._audio_in = 0, None, None
        self.out = av.open(str(self.tmp), "w", format={".mkv": "matroska", ".mov": "mov"}.get(suffix, suffix[1:]))
        try:
            codec = _CODECS[suffix]
            self.stream = self.out.add_stream(codec, rate=self.fps)
            self.stream.width, self.stream.height = width, height
            odd = width % 2 or height % 2
            self.stream.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
            if odd and codec != "libx264":
                raise ColorkitError(f"cannot write {self.path}: a {width}x{height} frame (odd size) needs .mp4, "
                                    ".mov or .mkv (H.264 4:4:4)")
            self.stream.time_base = self.time_base
            self.stream.codec_context.time_base = self.time_base
            if codec == "libx264":
                # zerolatency: no lookahead or B-frame queue, so k encoders at 720p hold ~35 MB each, not ~100
                self.stream.options = {"crf": str(crf), "preset": preset, "tune": "zerolatency", "threads": "2"}
            elif codec == "libvpx-vp9":
                self.stream.options = {"crf": str(crf + 14), "b": "0", "deadline": "realtime", "cpu-used": "8"}
            else:
                self.stream.codec_context.qscale = 3
                self.stream.codec_context.flags |= getattr(av.codec.context.Flags, "qscale", 0)
            self.stream.thread_type = "AUTO"
            if audio_from is not None:
                self._add_audio(Path(audio_from))
        except BaseException:
            self.abort()
            raise

    def _add_audio(self, source: Path) -> None:
        src = require_av().open(str(source))
        if not src.streams.audio:
            src.close()
            return
        self._audio_in = src
        self._audio_stream_in = src.streams.audio[0]
        self._audio_out = self.out.add_stream_from_template(self._audio_stream_in)
        self._audio_packets = src.demux(self._audio_stream_in)
        self._pending_audio: Any = None

    def _mux_audio(self, until: float | None) -> None:
        """Copy the source's audio packets up to ``until`` seconds (all when ``None``)."""
        if self._audio_in is None:
            return
        while True:
            pkt = self._pending_audio
            if pkt is None:
                try:
                    pkt = next(self._audio_packets)
                except (StopIteration, require_av().error.FFmpegError):
                    self._audio_in.close()
                    self._audio_in = None
                    return
                if pkt.dts is None:  # the demuxer's flush packet
                    continue
            if until is not None and pkt.pts is not None and float(pkt.pts * pkt.time_base) > until:
                self._pending_audio = pkt
                return
            self._pending_audio = None
            pkt.stream = self._audio_out
            self.out.mux(pkt)

    def write(self, rgb: np.ndarray, pts: int | None = None) -> None:
        """Append one ``(H, W, 3)`` uint8 RGB frame shown at ``pts`` (``time_base`` units;
        default: the next frame at ``fps``)."""
        av = require_av()
        if rgb.shape != (self.height, self.width, 3) or rgb.dtype != np.uint8:
            raise ColorkitError(f"expected a ({self.height}, {self.width}, 3) uint8 frame, got {rgb.dtype} "
                                f"{rgb.shape}")
        if pts is None:
            pts = 0 if self._last_pts is None else self._last_pts + max(1, round(1 / (self.fps * self.time_base)))
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts, frame.time_base = int(pts), self.time_base
        self._last_pts = int(pts)
        self._mux_audio(float(pts * self.time_base))
        for packet in self.stream.encode(frame):
            self.out.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, copy the rest of the audio, and rename into place."""
        try:
            for packet in self.stream.encode():
                self.out.mux(packet)
            self._mux_audio(None)
            self.out.close()
        except BaseException:
            self.abort()
            raise
        return self._file.commit(public=True)

    def abort(self) -> None:
        """Stop and remove the temporary file (nothing appears under the final name)."""
        for c in (getattr(self, "out", None), self._audio_in):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001 - closing a broken container while cleaning up
                pass
        self._audio_in = None
        self._file.abort()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class FrameFolderWriter:
    """Write RGB frames as ``<folder>/<name>.png`` (names given per frame), into a
    temporary folder beside ``folder`` renamed into place by :meth:`close`."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder)
        self._dir = fs.AtomicDir(self.path, sync=False, public=True)
        self.tmp = self._dir.tmp
        self.frames = 0

    def write(self, rgb: np.ndarray, name: str) -> None:
        from PIL import Image

        Image.fromarray(rgb).save(self.tmp / f"{name}.png")
        self.frames += 1

    def close(self) -> Path:
        """Move the folder into place (a previous one is replaced only once this one is
        complete)."""
        return self._dir.commit()

    def abort(self) -> None:
        self._dir.abort()

    def __enter__(self) -> FrameFolderWriter:
        return self

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
