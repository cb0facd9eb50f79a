"""The live page of a run: a small read-only HTTP server that renders the report's figures as SVG.

``aeqlab watch`` serves one page per run folder. The page polls ``state.json`` every few
seconds and reloads a figure (``fig/NAME.svg``) when its data changed. The journal is opened
read-only (SQLite ``mode=ro``) at each refresh, so the server never writes to a run and works
for runs in progress and finished ones alike. A refresh stays light on a long run: only the
rows the journal gained are read (:class:`~aeqlab.report.data.Follower`), every curve is
decimated before it is drawn (:func:`~aeqlab.report.figures.decimate`), and a figure is drawn
again only when a source it plots (samples, epochs, snapshots) changed.
Nothing is fetched from the network: the page is plain HTML and a few lines of JavaScript.
"""

from __future__ import annotations

import html
import io
import json
import sqlite3
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aeqlab.errors import AeqlabError, InputError
from aeqlab.journal import FILE
from aeqlab.report import figures
from aeqlab.report.data import Follower, read_run
from aeqlab.report.summary import flags, read_run_summary

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>aeqlab watch: {run}</title>
<style>
body {{ font-family: sans-serif; margin: 1em 2em; color: #222; }}
#state {{ font-size: 1.05em; margin-bottom: .5em; }}
.figs img {{ max-width: 100%; display: block; margin: .6em 0; border: 1px solid #ddd; }}
.flags li {{ margin: .15em 0; }}
.muted {{ color: #777; font-size: .9em; }}
</style></head><body>
<h1>{run}</h1>
<div id="state">status <b id="status">…</b> · samples <b id="samples">…</b> of <span id="planned">…</span>
 · epoch <b id="epoch">…</b> · <span id="metric">…</span></div>
<ul class="flags" id="flags"></ul>
<p class="muted">refreshes every {interval:g} s from {journal} (read-only)
 · last update <span id="updated">never</span></p>
<div class="figs">{images}</div>
<script>
const names = {names};
const shown = {{}};
async function poll() {{
  try {{
    const r = await fetch("state.json", {{cache: "no-store"}});
    const s = await r.json();
    document.getElementById("status").textContent = s.status;
    document.getElementById("samples").textContent = s.samples;
    document.getElementById("planned").textContent = s.planned;
    document.getElementById("epoch").textContent = s.epoch;
    document.getElementById("metric").textContent = s.metric;
    document.getElementById("flags").innerHTML = s.flags.map(f => "<li>" + f + "</li>").join("");
    document.getElementById("updated").textContent = new Date().toLocaleTimeString();
    // reload a figure only when its data changed; swap it in once the new version has loaded
    for (const n of names) {{
      if (s.figures[n] !== shown[n]) {{
        shown[n] = s.figures[n];
        const v = encodeURIComponent(s.figures[n]);
        const next = new Image();
        next.onload = () => {{ document.getElementById("fig-" + n).src = next.src; }};
        next.src = "fig/" + n + ".svg?v=" + v;
      }}
    }}
  }} catch (e) {{ document.getElementById("updated").textContent = "unreachable (" + e + ")"; }}
}}
poll(); setInterval(poll, {interval_ms});
</script></body></html>
"""


# what each figure plots: it is drawn again only when one of these changed (see Follower.versions)
SOURCES = {
    "learning_curves": ("samples", "epochs"),
    "knobs": ("snapshots",),
}
DEFAULT_SOURCES = ("samples",)


class RunView:
    """The run's figures and state, updated from what the journal gained (thread-safe)."""

    def __init__(self, run_dir: Path, min_age: float = 0.0):
        self.run_dir = Path(run_dir)
        self.min_age = min_age  # a live run changes every sample: re-read at most this often (s)
        self._read_at = 0.0
        if not (self.run_dir / FILE).is_file():
            raise InputError(
                "no journal in this folder", where=str(self.run_dir), hint="give a folder made by 'aeqlab run'"
            )
        self._lock = threading.Lock()
        self._follower = Follower()
        self._run: dict[str, Any] | None = None
        self._svg: dict[str, tuple[str, bytes]] = {}  # figure → (the key of the data it shows, its SVG)

    @property
    def _version(self) -> str:
        v = self._run["versions"] if self._run else {}
        return "-".join(str(v.get(k)) for k in ("samples", "epochs", "snapshots", "sessions"))

    def key(self, name: str) -> str:
        """What figure ``name`` shows, as a string: the versions of the sources it plots."""
        v = self.refresh()["versions"]
        empty = "" if v["samples"] else "empty-"  # the placeholder of a run without samples goes with its first
        return empty + "-".join(str(v[s]) for s in SOURCES.get(name, DEFAULT_SOURCES))

    def refresh(self) -> dict[str, Any]:
        """The run as read now (the rows the journal gained since the last refresh are read, no more)."""
        with self._lock:
            if self._run is not None and time.monotonic() - self._read_at < self.min_age:
                return self._run
            self._run = read_run(self.run_dir, live=True, follower=self._follower)
            self._read_at = time.monotonic()
            return self._run

    def state(self) -> dict[str, Any]:
        """What the page's header shows: status, progress, last metric and the run's flags."""
        run = self.refresh()
        header, data, n = run["header"], run["data"], run["naming"]
        lc = data["learning_curves"]
        metric = "R²" if n.task == "regression" else "accuracy"
        last = (
            f"test {metric} {lc['test_accuracy'][-1]:.3f}, test loss {lc['test_loss'][-1]:.4f}"
            if lc["test_accuracy"].size
            else f"no test {metric} yet"
        )
        return {
            "status": run["status"],
            "samples": run["n_samples"],
            "planned": header.epochs * header.samples_per_epoch,
            "epoch": f"{int(lc['epoch_samples'].size)} of {header.epochs} done",
            "metric": last,
            "flags": [
                html.escape(f).replace("**", "")
                for f in flags(data, header.samples_per_epoch, read_run_summary(self.run_dir), run.get("sessions"))
            ],
            "version": self._version,
            "figures": {name: self.key(name) for name in figures.FIGURES},
        }

    def svg(self, name: str) -> bytes:
        """One figure of the report as SVG."""
        run, key = self.refresh(), self.key(name)
        with self._lock:
            if self._svg.get(name, ("",))[0] != key:  # drawn only when its data changed
                if run["n_samples"] == 0:
                    fig = figures.Figure(figsize=(6, 1))
                    fig.text(0.5, 0.5, "no committed samples yet", ha="center", va="center")
                else:
                    fig = figures.FIGURES[name](run["data"], run["naming"])
                buf = io.BytesIO()
                fig.savefig(buf, format="svg")
                self._svg[name] = (key, buf.getvalue())
            return self._svg[name][1]

    def page(self, interval: float) -> bytes:
        """The HTML page."""
        names = list(figures.FIGURES)
        images = "".join(f'<img id="fig-{n}" alt="{n}" src="fig/{n}.svg">' for n in names)
        return PAGE.format(
            run=html.escape(self.run_dir.name),
            journal=html.escape(str(self.run_dir / FILE)),
            interval=interval,
            interval_ms=int(interval * 1000),
            images=images,
            names=json.dumps(names),
        ).encode("utf-8")


def make_server(run_dir: Path, host: str = "127.0.0.1", port: int = 0, interval: float = 3.0) -> ThreadingHTTPServer:
    """A server for the live page of ``run_dir`` (not yet serving: call ``serve_forever``).

    Parameters
    ----------
    run_dir
        The run folder.
    host
        Interface to bind (loopback by default; another one only when asked for).
    port
        TCP port; 0 picks a free one (read it from ``server.server_address``).
    interval
        Seconds between the page's refreshes.
    """
    if not interval > 0:
        raise InputError(f"--interval must be positive, not {interval:g}", where="aeqlab watch")
    view = RunView(run_dir, min_age=interval / 2)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: the terminal shows one line, the URL
            pass

        def _send(self, body: bytes, ctype: str, code: int = 200) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the name http.server calls
            path = self.path.split("?", 1)[0]
            try:
                if path in ("/", "/index.html"):
                    self._send(view.page(interval), "text/html; charset=utf-8")
                elif path == "/state.json":
                    self._send(json.dumps(view.state()).encode(), "application/json")
                elif path.startswith("/fig/") and path.endswith(".svg") and path[5:-4] in figures.FIGURES:
                    self._send(view.svg(path[5:-4]), "image/svg+xml")
                else:
                    self._send(b"not found", "text/plain", HTTPStatus.NOT_FOUND)
            except (BrokenPipeError, ConnectionResetError):  # the browser dropped a superseded request
                pass
            except (AeqlabError, sqlite3.Error) as exc:  # e.g. the journal is mid-creation: say so, keep serving
                msg = exc.one_line() if isinstance(exc, AeqlabError) else str(exc)
                self._send(json.dumps({"error": msg}).encode(), "application/json", HTTPStatus.SERVICE_UNAVAILABLE)

    try:
        return ThreadingHTTPServer((host, port), Handler)
    except OSError as exc:
        raise InputError(
            f"cannot listen on {host}:{port}: {exc.strerror}", where="aeqlab watch", hint="choose another --port"
        ) from None
