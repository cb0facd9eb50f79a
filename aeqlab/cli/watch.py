"""``aeqlab watch``: the live page of a run in a browser (registered on the shared Typer app)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from aeqlab.cli.app import Exited, app, err, fail
from aeqlab.errors import AeqlabError


@app.command()
def watch(
    run_dir: Annotated[Path, typer.Argument(metavar="RUN_DIR", help="a run folder made by 'aeqlab run'")],
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port (0: a free one)")] = 8765,
    host: Annotated[str, typer.Option(help="interface to listen on; other than loopback only when you ask")] = (
        "127.0.0.1"
    ),
    interval: Annotated[float, typer.Option(help="seconds between the page's refreshes")] = 3.0,
) -> None:
    """Follow a run in the browser: its curves, state and flags, read-only from its journal."""
    from aeqlab.report.watch import make_server

    try:
        server = make_server(run_dir, host=host, port=port, interval=interval)
    except AeqlabError as exc:
        fail(exc)
    h, p = server.server_address[:2]
    print(f"watching {run_dir} at http://{h}:{p}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        err.print("interrupted: the watch page is stopped")
        raise Exited(130) from None
    finally:
        server.server_close()
