"""``colorkit serve``: a small web page that colorizes one photo at a time in the browser.

A person drops a photo on the page, picks k and a model (the bundled demo model or a run
directory given with ``--run``), and sees the grey input beside the k colorizations, each
downloadable as a full-resolution PNG. Colour photos are turned grey first (the page says
so). A click on the photo places a colour hint (:mod:`colorkit.core.hints`) with a colour
picker; hints can be moved or removed, and the page asks again for the k colorizations
with the hints, sent in the query string as their JSON form
(``hints=[{"x":..,"y":..,"color":..}]``, in the photo's own pixels). Built on FastAPI +
uvicorn (the optional ``serve`` extra) with one self-contained HTML page: no files from
other hosts, nothing to build.

Safety: the server binds to 127.0.0.1 unless told otherwise; it writes only inside its own
temporary folder (made at start, removed at exit; only the newest ``keep`` finished results
are kept, and a result still being made is never removed); an upload is refused with a
one-line message on the page when it is larger than ``max_upload_bytes``, has more than
``max_pixels`` pixels, or is not a readable image (the reasons of ``colorkit data info``).
One photo is decoded and colorized at a time, so memory stays bounded however many
uploads arrive together; at most ``queue`` are taken at once (one more gets 503 with
Retry-After) and a stalled upload gets 408; a bad hint is a one-line message naming it. A
connection that does not send its headers in time is closed, and the open connections
are capped (:mod:`colorkit.apps.serve_net`). Any failure becomes a message without the
server's paths, never a crash of the server; a client that goes away mid-upload is no error.
"""

# No ``from __future__ import annotations`` here: FastAPI reads the endpoints' annotations
# (``request: Request``, imported inside create_app) at definition time.
import contextlib
import html
import json
import os
import shutil
import sys
import tempfile
import threading
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from colorkit.apps.serve_net import MAX_CONNECTIONS, MAX_HEADER_BYTES, bound_port, guarded_protocol, listen
from colorkit.apps.serve_store import KEEP, ResultStore
from colorkit.core.fs import open_write
from colorkit.core.registry import ColorkitError

if TYPE_CHECKING:
    from colorkit.core.hints import Hint
    from colorkit.inference.colorizer import Colorizer
    from colorkit.inference.output import Writer

MAX_UPLOAD_BYTES = 25 * 1024 * 1024
"""Largest upload accepted by default (25 MiB)."""
MAX_PIXELS = 16_000_000
"""Largest photo accepted by default, in pixels (16 megapixels)."""
MAX_K = 8
"""Most colorizations per photo on the page (the demo model's topk mode gives at most 8)."""
QUEUE = 32
"""Uploads taken at once (received, waiting or being colorized); one more gets 503."""
READ_TIMEOUT = 30.0
"""Seconds an upload may send nothing before it is answered 408, and a connection may take
to send a request's headers before it is closed."""

PAGE_TEMPLATE = "templates/serve.html"
"""The web page, relative to the ``colorkit.apps`` package (package data): one
self-contained HTML file whose ``{{...}}`` fields :func:`render_page` fills in."""

REASON_TEXT = {
    "empty-file": "The file is empty.",
    "not-an-image": "This file is not an image that can be read (JPEG, PNG, WebP, BMP or TIFF).",
    "corrupt-or-truncated": "The image is damaged or cut short and cannot be decoded.",
    "unsupported-mode": "The image's pixel format cannot be converted to RGB.",
}


def require_extra() -> None:
    """One-line error when the optional web dependencies are missing."""
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise ColorkitError(f"colorkit serve needs the optional web dependencies ({exc.name} is missing); "
                            "install them with: pip install 'colorkit[serve]'") from None


class Models:
    """The models the page offers, by name: ``demo`` (the bundled model) and each run
    directory (by its folder name). All are loaded at start, so a bad run directory fails
    before the server listens."""

    def __init__(self, runs: list[str | Path] | None = None, *, demo: bool = True, device: str = "auto") -> None:
        from colorkit.inference import load

        self.colorizers: dict[str, Colorizer] = {}
        for run in runs or []:
            name = Path(run).resolve().name or str(run)
            base, i = name, 2
            while name in self.colorizers or name == "demo":
                name, i = f"{base}-{i}", i + 1
            self.colorizers[name] = load(run, device=device)
        if demo:
            self.colorizers["demo"] = load(None, device=device)
        if not self.colorizers:
            raise ColorkitError("no model to serve: give --run RUN or keep the demo model")

    def describe(self) -> list[dict[str, Any]]:
        from colorkit.inference.colorizer import DEMO_MODEL_NOTE

        out = []
        for name, c in self.colorizers.items():
            note = DEMO_MODEL_NOTE if c.bundled else f"run directory {c.run_dir}"
            out.append({"name": name, "method": c.name, "label": f"{name} ({c.name})", "note": note,
                        "modes": list(c.sample_modes)})
        return out


class _Refused(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def parse_hints(text: str | None) -> "list[Hint] | None":
    """The ``hints`` query parameter (their JSON form) -> hints; ``None`` when absent."""
    from colorkit.core.hints import hints_from_json

    if text is None or not text.strip():
        return None
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ColorkitError(f"hints: not valid JSON ({' '.join(str(exc).split())[:80]}); expected a list like "
                            '[{"x": 120, "y": 80, "color": "#3a7a2f"}]') from None
    return hints_from_json(obj, where="hints")


def colorize_upload(models: Models, store: ResultStore, data_path: Path, rid: str, *, model: str, k: int,
                    max_pixels: int, lock: threading.Lock, writer: "Writer",
                    hints: "list[Hint] | None" = None) -> dict[str, Any]:
    """Colorize the uploaded file at ``data_path`` (inside the result's folder) into that
    folder with ``writer`` (a PNG :class:`colorkit.inference.output.Writer`, the one the
    command line uses), honouring ``hints`` (in the photo's pixels, checked against its
    size); the JSON the page shows. Decoding happens inside ``lock`` too: one photo is in
    memory at a time, however many uploads arrive together."""
    from colorkit.core.hints import check_hints, hints_to_json
    from colorkit.data.imageio import has_colour, read_photo
    from colorkit.inference.photo import colorize_photo

    folder = data_path.parent
    colorizer = models.colorizers[model]
    with lock:  # one photo decoded and colorized at a time: bounded memory
        photo = read_photo(data_path, max_pixels)
        data_path.unlink(missing_ok=True)
        if photo.image is None:
            if photo.reason == "too-large":
                raise _Refused(413, f"The photo is too large: {photo.detail.replace(' (--max-pixels)', '')}. "
                                    "Make it smaller, or start the server with a higher --max-pixels.")
            text = REASON_TEXT.get(photo.reason or "", "The image cannot be read.")
            raise _Refused(400, text + (f" ({photo.detail})" if photo.detail else ""))
        img = photo.image
        del photo
        colour = has_colour(img)
        width, height = img.width, img.height
        if hints:
            check_hints(hints, width, height, where="hints")
        try:
            writer.submit(img.convert("L"), folder / "grey.png")
            colorize_photo(colorizer, img, writer, [folder / f"{i + 1}.png" for i in range(k)], k=k,
                           hints=hints or None)
        except BaseException:
            with contextlib.suppress(Exception):
                writer.flush()  # nothing is still being written when the result's folder is dropped
            raise
        del img
        writer.flush()  # every file is whole before the page asks for it
    return {
        "id": rid, "width": width, "height": height, "colour": colour, "k": k, "model": model,
        "method": colorizer.name, "grey": f"/results/{rid}/grey.png",
        "results": [f"/results/{rid}/{i + 1}.png" for i in range(k)], "hints": hints_to_json(hints or []),
    }


def create_app(models: Models, workdir: Path, *, max_upload_bytes: int = MAX_UPLOAD_BYTES,
               max_pixels: int = MAX_PIXELS, keep: int = KEEP, queue: int = QUEUE,
               read_timeout: float = READ_TIMEOUT) -> Any:
    """The FastAPI application (see the module docstring). ``workdir`` is the only folder
    it writes to. At most ``queue`` uploads are taken at once (being received, waiting or
    being colorized); one more is answered 503 with Retry-After. An upload that sends
    nothing for ``read_timeout`` seconds, or takes more than ten times that in all, is
    answered 408."""
    require_extra()
    import asyncio

    from fastapi import FastAPI, Request
    from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.requests import ClientDisconnect

    from colorkit.inference.output import OutputFormat, Writer

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, title="colorkit")
    store = ResultStore(workdir, keep=keep)
    lock = threading.Lock()
    # Every photo is decoded and colorized on this one thread: requests wait for it without
    # holding a thread each, and the memory one colorization frees is reused by the next
    # (on many threads, each would keep its own allocator arena at its high-water mark).
    worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="colorkit-serve")
    writer = Writer(OutputFormat("png"))  # used from the worker thread only
    page = render_page(models.describe(), max_upload_bytes=max_upload_bytes, max_pixels=max_pixels)
    taken = [0]  # uploads being received, waiting or colorized (the event loop's thread only)

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": public(message, workdir)}, status_code=status, headers=headers)

    async def receive(request: Request, upload: Path) -> int:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10 * read_timeout
        size = 0
        stream = request.stream().__aiter__()
        with open_write(upload, "wb") as fh:  # in the server's own folder, never through a link
            while True:
                wait = min(read_timeout, deadline - loop.time())
                if wait <= 0:
                    raise _Refused(408, "The upload took too long; try again on a faster connection.")
                try:
                    chunk = await asyncio.wait_for(stream.__anext__(), timeout=wait)
                except StopAsyncIteration:
                    break
                except asyncio.TimeoutError:
                    raise _Refused(408, "The upload stalled (nothing received for a while); try again.") from None
                size += len(chunk)
                if size <= max_upload_bytes:
                    fh.write(chunk)
                elif size > 8 * max_upload_bytes:  # read (and drop) a little more, so that the
                    break  # browser gets the answer; then stop reading
        return size

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get("/api/models")
    def list_models() -> JSONResponse:
        return JSONResponse(models.describe())

    @app.post("/api/colorize")
    async def colorize(request: Request) -> JSONResponse:
        params = request.query_params
        model = params.get("model", next(iter(models.colorizers)))
        if model not in models.colorizers:
            return error(400, f"Unknown model {model!r}; choose one of {', '.join(models.colorizers)}.")
        try:
            k = int(params.get("k", "5"))
        except ValueError:
            return error(400, f"k must be a whole number from 1 to {MAX_K}.")
        if not 1 <= k <= MAX_K:
            return error(400, f"k must be a whole number from 1 to {MAX_K}, not {k}.")
        try:
            hints = parse_hints(params.get("hints"))
        except ColorkitError as exc:
            return error(400, str(exc))
        if taken[0] >= queue:
            return error(503, f"The server is busy with {taken[0]} photos; try again in a few seconds.",
                         {"Retry-After": "5"})
        limit_text = f"{max_upload_bytes / 2**20:g} MB"
        try:
            rid, folder = store.new()
        except OSError:  # a full or read-only temporary folder
            return error(503, "The server cannot store the upload now (its temporary folder is full or read-only); "
                              "try again later.", {"Retry-After": "30"})
        taken[0] += 1
        try:
            upload = folder / "upload"
            size = await receive(request, upload)
            if size > max_upload_bytes:
                raise _Refused(413, f"The file is larger than {limit_text}, the most this server accepts.")
            if size == 0:
                raise _Refused(400, "No file was received: choose or drop a photo first.")
            result = await asyncio.wrap_future(worker.submit(colorize_upload, models, store, upload, rid, model=model,
                                                             k=k, max_pixels=max_pixels, lock=lock,
                                                             writer=writer, hints=hints))
            store.finish(rid)
            return JSONResponse(result)
        except _Refused as exc:
            store.drop(rid)
            return error(exc.status, exc.message, exc.headers)
        except ClientDisconnect:  # the client went away mid-upload: nobody to answer, nothing to log
            store.drop(rid)
            return error(400, "The upload was cut short.")
        except ColorkitError as exc:
            store.drop(rid)
            return error(400, str(exc))
        except MemoryError:
            store.drop(rid)
            return error(503, "The server ran out of memory for this photo; try a smaller one.")
        except Exception as exc:  # noqa: BLE001 - the server answers every request and keeps running
            store.drop(rid)
            ref = uuid.uuid4().hex[:8]
            print(f"colorkit serve: internal error {ref}:", file=sys.stderr)
            traceback.print_exc()
            return error(500, f"Internal error while colorizing ({type(exc).__name__}; reference {ref} in the "
                              "server's log).")
        finally:
            taken[0] -= 1

    @app.get("/results/{rid}/{name}")
    def result_file(rid: str, name: str) -> Any:
        path = store.path(rid, name)
        if path is None:
            return error(404, "No such result (results are kept for the newest few photos only).")
        return FileResponse(path, media_type="image/png")

    return app


def public(message: str, workdir: Path) -> str:
    """``message`` without the server's own paths (its temporary folder)."""
    for root in {str(workdir), str(workdir.resolve()), str(workdir.parent), str(workdir.resolve().parent)}:
        message = message.replace(root, "<upload>")
    return message


def serve(*, runs: list[str] | None = None, host: str = "127.0.0.1", port: int = 7860, device: str = "auto",
          demo: bool = True, max_upload_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
          keep: int = KEEP, queue: int = QUEUE, read_timeout: float = READ_TIMEOUT,
          max_connections: int = MAX_CONNECTIONS, echo: Any = print) -> None:
    """Listen, load the models, make the temporary folder, serve until interrupted, remove
    it. The address printed is the one listened on (``port=0``: the port the system chose).
    A connection must send a request's headers within ``read_timeout`` seconds; at most
    ``max_connections`` are open at once (:mod:`colorkit.apps.serve_net`)."""
    require_extra()
    import signal

    import uvicorn

    sock = listen(host, port)  # before any work: a port in use is one line at once
    workdir = None
    old_cache = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        workdir = Path(tempfile.mkdtemp(prefix="colorkit-serve-"))
        # PyTorch makes a compile cache folder on first use (in the system's temp folder by
        # default): keep it inside ours, so nothing is written elsewhere.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(workdir / "torch")
        (workdir / "results").mkdir()
        models = Models(runs, demo=demo, device=device)
        app = create_app(models, workdir / "results", max_upload_bytes=max_upload_bytes, max_pixels=max_pixels,
                         keep=keep, queue=queue, read_timeout=read_timeout)
        shown = f"[{host}]" if ":" in host else host
        echo(f"colorkit serve: http://{shown}:{bound_port(sock)}/ (models: {', '.join(models.colorizers)}; "
             f"temporary folder {workdir}; Ctrl+C to stop)")
        if host not in {"127.0.0.1", "localhost", "::1"}:
            echo(f"colorkit serve: warning: listening on {host}: anyone who can reach this machine can upload photos")
        protocol = guarded_protocol(header_timeout=read_timeout, max_connections=max_connections)
        config = uvicorn.Config(app, http=protocol, ws="none", h11_max_incomplete_event_size=MAX_HEADER_BYTES,
                                log_level="warning", access_log=False)
        server = uvicorn.Server(config)
        # uvicorn shuts down cleanly on SIGINT and SIGTERM, then re-raises the signal to the
        # handler that was there before: for SIGTERM that is the default one, which would end
        # the process before the temporary folder is removed. Make it an interrupt instead.

        def _interrupt(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt

        main_thread = threading.current_thread() is threading.main_thread()  # signals: main thread only
        old_term = signal.signal(signal.SIGTERM, _interrupt) if main_thread else None
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:  # uvicorn re-raises Ctrl+C (SIGINT) after a clean shutdown
            pass
        except SystemExit:
            raise ColorkitError(f"the web server could not start on {host}:{port}") from None
        finally:
            if main_thread:
                signal.signal(signal.SIGTERM, old_term)
        if not server.started:
            raise ColorkitError(f"the web server could not start on {host}:{port}")
        echo("colorkit serve: stopped")
    finally:
        sock.close()
        if old_cache is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = old_cache
        if workdir is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree(workdir)


def render_page(models: list[dict[str, Any]], *, max_upload_bytes: int, max_pixels: int) -> str:
    """The page (:data:`PAGE_TEMPLATE`, shipped as package data) with the models, the k
    choices and the limits filled in."""
    options = "\n".join(f'<option value="{html.escape(m["name"])}">{html.escape(m["label"])}</option>'
                        for m in models)
    k_options = "\n".join(f'<option value="{k}"{" selected" if k == 5 else ""}>{k}</option>'
                          for k in range(1, MAX_K + 1))
    from colorkit.core.hints import MAX_HINTS

    notes = json.dumps({m["name"]: m["note"] for m in models})
    page = resources.files("colorkit.apps").joinpath(PAGE_TEMPLATE).read_text(encoding="utf-8")
    return (page.replace("{{OPTIONS}}", options).replace("{{K_OPTIONS}}", k_options)
            .replace("{{NOTES}}", notes.replace("</", "<\\/"))
            .replace("{{MAX_HINTS}}", str(MAX_HINTS)).replace("{{MAX_MB}}", f"{max_upload_bytes / 2**20:.0f}")
            .replace("{{MAX_MP}}", f"{max_pixels / 1e6:g}"))

