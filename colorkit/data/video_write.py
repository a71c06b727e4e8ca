"""Writing clips: :class:`VideoWriter` encodes RGB frames (H.264 in ``.mp4``, ``.mov`` and
``.mkv``; VP9 in ``.webm``; MPEG-4 part 2 in ``.avi``; any width and height: H.264 and VP9
go to 4:4:4 when a side is odd), copies the audio stream of a source clip, and writes into
a temporary file beside the target that is renamed only by :meth:`VideoWriter.close`: no
half-written file ever has the final name. :class:`FrameFolderWriter` does the same for a
folder of PNG frames. :func:`check_output` says, before anything is written, whether a
container can hold a clip's audio.

PyAV is the optional ``video`` extra (``pip install 'colorkit[video]'``); without it every
video function raises a one-line error naming the extra (:func:`require_av`).
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from colorkit.core import fs
from colorkit.core.registry import ColorkitError

_CODECS = {".mp4": "libx264", ".mov": "libx264", ".mkv": "libx264", ".webm": "libvpx-vp9", ".avi": "mpeg4"}
CONTAINERS = tuple(_CODECS)
"""Containers :class:`VideoWriter` writes (by the file's extension)."""
_FORMATS = {".mkv": "matroska", ".mov": "mov", ".mp4": "mp4", ".webm": "webm", ".avi": "avi"}


def require_av() -> Any:
    """The ``av`` module, or a one-line error naming the extra that installs it."""
    try:
        import av
    except ImportError:
        raise ColorkitError("colorizing video needs PyAV, which is not installed: pip install 'colorkit[video]'") \
            from None
    return av


def _container_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _CODECS:
        raise ColorkitError(f"cannot write video {path}: expected one of {', '.join(_CODECS)}")
    return suffix


def _add_video_stream(out: Any, suffix: str, width: int, height: int, fps: Fraction) -> Any:
    codec = _CODECS[suffix]
    stream = out.add_stream(codec, rate=fps)
    stream.width, stream.height = width, height
    odd = width % 2 or height % 2
    # H.264 4:2:0 needs even sides; VP9 takes odd ones but would halve the colour of the last row or column
    stream.pix_fmt = "yuv444p" if odd and codec != "mpeg4" else "yuv420p"
    return stream


def check_output(suffix: str, *, width: int, height: int, fps: Fraction | float = 24,
                 audio_from: str | Path | None = None) -> None:
    """A one-line error, before anything is written, when a ``suffix`` file (``.mp4``, ...)
    cannot hold a ``width`` x ``height`` clip with the audio of ``audio_from``: the file's
    header is written into memory with the same streams."""
    av = require_av()
    suffix = _container_of(Path(f"x{suffix}"))
    out = av.open(io.BytesIO(), "w", format=_FORMATS[suffix])
    src = None
    try:
        _add_video_stream(out, suffix, width, height, Fraction(fps).limit_denominator(1_000_000))
        if audio_from is not None:
            src = av.open(str(audio_from))
            if src.streams.audio:
                audio = src.streams.audio[0]
                try:
                    out.add_stream_from_template(audio)
                    out.start_encoding()
                except (ValueError, av.error.FFmpegError):
                    raise ColorkitError(f"the audio of {audio_from} ({audio.codec_context.name}) cannot be copied "
                                        f"into a {suffix} file; choose another --container (.mkv holds any "
                                        "audio)") from None
    finally:
        for c in (out, src):
            try:
                if c is not None:
                    c.close()
            except Exception:  # noqa: BLE001 - closing a container that was only tried
                pass


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
        suffix = _container_of(self.path)
        self._file = fs.AtomicFile(self.path, suffix=suffix)
        self.tmp = self._file.tmp
        self.fps = Fraction(fps).limit_denominator(1_000_000)
        self.time_base = Fraction(time_base) if time_base is not None else 1 / self.fps
        self.width, self.height = width, height
        self.frames, self._last_pts, self._audio_in, self._finished = 0, None, None, False
        self.out = av.open(str(self.tmp), "w", format=_FORMATS[suffix])
        try:
            codec = _CODECS[suffix]
            self.stream = _add_video_stream(self.out, suffix, width, height, self.fps)
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

    def finish(self) -> Path:
        """Flush the encoder, copy the rest of the audio and close the temporary file,
        whose path is returned (still under its temporary name: :meth:`close` renames it)."""
        if not self._finished:
            try:
                for packet in self.stream.encode():
                    self.out.mux(packet)
                self._mux_audio(None)
                self.out.close()
            except BaseException:
                self.abort()
                raise
            self._finished = True
        return self.tmp

    def close(self) -> Path:
        """:meth:`finish`, and rename into place."""
        self.finish()
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

    def finish(self) -> Path:
        """The temporary folder, complete (:meth:`close` moves it into place)."""
        return self.tmp

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
