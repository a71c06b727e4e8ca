"""``colorkit serve``: a web page to colorize photos in the browser (optional ``serve`` extra)."""

from __future__ import annotations

import click

from colorkit.apps.serve import KEEP, MAX_PIXELS, MAX_UPLOAD_BYTES, QUEUE, READ_TIMEOUT
from colorkit.apps.serve_net import MAX_CONNECTIONS


@click.command("serve")
@click.option("--run", "runs", multiple=True, type=click.Path(),
              help="Run directory from `colorkit train` to offer (repeatable) [default: only the bundled demo model: "
                   "mdn trained on ~300 small (64x64) demo photos only].")
@click.option("--no-demo", is_flag=True, help="Do not offer the bundled demo model (needs --run).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on (127.0.0.1: this machine only).")
@click.option("--port", type=click.IntRange(min=0, max=65535), default=7860, show_default=True,
              help="Port to listen on (0: a free port, printed at start).")
@click.option("--device", default="auto", show_default=True)
@click.option("--max-upload-mb", type=click.FloatRange(min=0.001), default=MAX_UPLOAD_BYTES / 2**20, show_default=True,
              help="Largest upload accepted, in MB.")
@click.option("--max-pixels", type=click.IntRange(min=1), default=MAX_PIXELS, show_default=True,
              help="Largest photo accepted, in pixels.")
@click.option("--keep", type=click.IntRange(min=1), default=KEEP, show_default=True,
              help="Finished results kept in the server's temporary folder (older ones are deleted).")
@click.option("--queue", type=click.IntRange(min=1), default=QUEUE, show_default=True,
              help="Uploads taken at once (received, waiting or colorized; one photo is colorized at a time); "
                   "one more is answered 503 with Retry-After.")
@click.option("--read-timeout", type=click.FloatRange(min=0.1), default=READ_TIMEOUT, show_default=True,
              help="Seconds an upload may send nothing before it is refused (408), and a connection may take to "
                   "send a request's headers before it is closed.")
@click.option("--max-connections", type=click.IntRange(min=1), default=MAX_CONNECTIONS, show_default=True,
              help="Connections open at once; one more is answered 503 with Retry-After and closed.")
def serve(runs, no_demo, host, port, device, max_upload_mb, max_pixels, keep, queue, read_timeout,
          max_connections) -> None:
    """Serve a page where you drop a photo and see K colorizations beside the grey input.

    Colour photos are turned grey first (the page says so). Pick k and the model; each
    result downloads as a PNG at full resolution. Click the photo to place colour hints
    (a point and a colour; move or remove them): the colorizations follow them. The
    server writes only in a temporary folder, removed when it stops. Needs the optional
    web dependencies: pip install 'colorkit[serve]'.

    \b
    Examples:
      colorkit serve                       # http://127.0.0.1:7860/ with the demo model
      colorkit serve --run runs/mdn --port 8000
    """
    from colorkit.apps.serve import require_extra
    from colorkit.apps.serve import serve as run_server
    from colorkit.core.registry import ColorkitError

    require_extra()
    if no_demo and not runs:
        raise ColorkitError("--no-demo needs at least one --run")
    run_server(runs=list(runs), host=host, port=port, device=device, demo=not no_demo,
               max_upload_bytes=int(max_upload_mb * 2**20), max_pixels=max_pixels, keep=keep, queue=queue,
               read_timeout=read_timeout, max_connections=max_connections,
               echo=lambda m: click.echo(m, err=True))
