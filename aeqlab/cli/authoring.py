"""Protocol authoring commands: ``validate``, ``schema``, ``init``, ``plan``.

Registered on the shared Typer app; errors are one line per problem on stderr, exit
2 for a bad protocol, 1 for a runtime failure.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from aeqlab.cli.app import app, err, fail
from aeqlab.errors import AeqlabError, InputError

TEMPLATES = {
    "twin": "twin.yaml",
    "nidaq-keithley": "nidaq_keithley2450.yaml",
    "serial-dmm": "serial_dac_dmm.yaml",
}


def template_text(name: str) -> str:
    """The text of an ``aeqlab init`` template."""
    if name not in TEMPLATES:
        raise InputError(f"unknown template {name!r}", where="aeqlab init", hint=f"use one of {', '.join(TEMPLATES)}")
    return resources.files("aeqlab").joinpath("templates", TEMPLATES[name]).read_text(encoding="utf-8")


@app.command()
def validate(
    protocols: Annotated[list[Path], typer.Argument(metavar="PROTOCOL...", help="protocol YAML files")],
    as_json: Annotated[
        bool, typer.Option("--json", help="write one JSON object per file (ok, problems, warnings) to stdout")
    ] = False,
) -> None:
    """Check protocol files: every problem, one line each with file:line:col. Exit 0 when all are valid.

    Warnings (a time without a unit, read as seconds) are printed too; they do not change the exit code.
    """
    import json

    from aeqlab.protocol.loader import check_file

    results = [check_file(path) for path in protocols]
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results], indent=2, ensure_ascii=False))
    else:
        for r in results:
            for problem in r.problems:
                err.print(f"[red]error:[/red] {escape(str(problem))}", soft_wrap=True, markup=True, highlight=False)
            for warning in r.warnings:
                err.print(
                    f"[yellow]warning:[/yellow] {escape(str(warning))}", soft_wrap=True, markup=True, highlight=False
                )
            if r.ok:
                kind = "simulated instruments" if r.protocol.is_simulated_only() else "real instruments"
                typer.echo(f"{r.file}: valid ({r.protocol.name}, {kind})")
    if any(not r.ok for r in results):
        raise typer.Exit(2)


@app.command()
def schema(
    out: Annotated[Path | None, typer.Option("-o", "--out", help="write to this file (default: stdout)")] = None,
) -> None:
    """Print the JSON Schema (draft 2020-12) of protocol files, for editors and validators."""
    from aeqlab.protocol.schema import schema_text

    text = schema_text()
    if out is None:
        typer.echo(text, nl=False)
        return
    try:
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(InputError(f"cannot write: {exc.strerror or exc}", where=str(out)))
    err.print(f"wrote {out}", markup=False)


@app.command()
def init(
    template: Annotated[str, typer.Argument(help=f"one of: {', '.join(TEMPLATES)}", show_default=True)] = "twin",
    out: Annotated[Path | None, typer.Option("-o", "--out", help="write to this file (default: stdout)")] = None,
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Start a protocol from a template (twin demo, NI-DAQ + Keithley 2450, serial DAC + DMM).

    With -o, the editor schema (aeqlab.schema.json) is written next to the file too.
    """
    try:
        text = template_text(template)
        if out is None:
            typer.echo(text, nl=False)
            return
        if out.exists() and not force:
            raise InputError("the file exists", where=str(out), hint="choose another name, or add --force")
        out.write_text(text, encoding="utf-8")
        schema_path = out.parent / "aeqlab.schema.json"
        if not schema_path.exists():
            from aeqlab.protocol.schema import schema_text

            schema_path.write_text(schema_text(), encoding="utf-8")
    except OSError as exc:
        fail(InputError(f"cannot write: {exc.strerror or exc}", where=str(out)))
    except AeqlabError as exc:
        fail(exc)
    err.print(f"wrote {out} (check it with: aeqlab validate {out}; preview it with: aeqlab plan {out})", markup=False)


@app.command()
def plan(
    protocol_path: Annotated[
        Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file (on its twin, or blind without one)")
    ],
    samples: Annotated[int, typer.Option("--samples", min=1, max=100, help="training samples to show")] = 1,
) -> None:
    """Show what the instruments will be told in the first training sample(s); opens no instrument.

    The samples run on the protocol's twin; every value is checked against its limits. Without a
    'simulation:' section the preview is blind: order, limits, ramps and safe state, readings marked unknown.
    """
    from rich.console import Console

    from aeqlab.protocol.loader import load_located
    from aeqlab.tools.planview import preview, render

    try:
        protocol, _, located = load_located(protocol_path)
        pv = preview(protocol, located, samples)
    except AeqlabError as exc:
        fail(exc)
    render(pv, protocol, Console(highlight=False, width=200), protocol_path)
    if pv.error is not None:
        fail(pv.error)
