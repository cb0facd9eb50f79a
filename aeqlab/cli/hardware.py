"""Commands for instruments: ``aeqlab emulate`` and ``aeqlab instruments``.

Discovery (``--discover``) broadcasts on the LAN (VISA's VXI-11 search), so it only
ever runs when asked for on the command line.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from aeqlab.cli.app import Exited, app, err, fail
from aeqlab.errors import AeqlabError, InputError
from aeqlab.signals import can_install, put_back


def _load(path: Path):
    from aeqlab.protocol import load_protocol

    return load_protocol(path)[0]


@app.command()
def emulate(
    protocol_path: Annotated[Path, typer.Argument(metavar="PROTOCOL", help="protocol YAML file (needs a twin)")],
    log: Annotated[Path | None, typer.Option(help="folder for each emulator's command log, written on exit")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the resources as one JSON object")] = False,
) -> None:
    """Serve emulated instruments over the protocol's twin until Ctrl-C; prints their resource strings."""
    from aeqlab.backends.emulate import start_emulators

    try:
        protocol = _load(protocol_path)
        emus = start_emulators(protocol)
    except AeqlabError as exc:
        fail(exc)
        return
    stop = threading.Event()
    # Ctrl-C and SIGTERM only set a flag: the emulators then stop in one place, whatever was running
    # (only in the main thread: elsewhere signals cannot be caught, and the caller stops the command)
    previous = (
        {s: signal.signal(s, lambda *a: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)} if can_install() else {}
    )
    try:
        resources = emus.resources
        if as_json:
            print(json.dumps(resources), flush=True)
        else:
            for name, resource in resources.items():
                print(f"{name:<12} {protocol.instruments[name].driver:<16} {resource}", flush=True)
            err.print("emulators bound to 127.0.0.1; Ctrl-C stops them")
        while not stop.wait(0.2):
            pass
    finally:
        emus.stop()
        for sig, handler in previous.items():
            put_back(sig, handler)
        if log is not None:
            emus.write_logs(log)
    raise typer.Exit(0)


@app.command()
def instruments(
    protocol_path: Annotated[
        Path | None, typer.Argument(metavar="[PROTOCOL]", help="protocol whose instruments to open")
    ] = None,
    bench: Annotated[bool, typer.Option("--bench", help="open the real instruments the protocol names")] = False,
    emulated: Annotated[bool, typer.Option("--emulate", help="open the protocol's instruments on emulators")] = False,
    discover: Annotated[
        bool, typer.Option("--discover", help="search VISA (LAN broadcast), serial ports and NI-DAQ devices")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Open each instrument (--bench or --emulate) and print identity, channels, limits and state, changing nothing.

    Every instrument is reported, ok or failed with its reason; the exit code is 1 if any failed.
    """
    try:
        out: dict[str, Any] = {}
        if protocol_path is not None:
            emulate_them = _instrument_kind(bench=bench, emulate=emulated)
            protocol = _load(protocol_path)
        elif not discover:
            raise InputError("name a protocol, or ask for --discover", where="command line")
        elif bench or emulated:
            raise InputError(
                "--bench and --emulate open a protocol's instruments", where="command line", hint="name the protocol"
            )
        if discover:
            out["discovered"] = discover_resources()
        if protocol_path is not None:
            out["instruments"] = _describe(protocol, emulate_them)
    except AeqlabError as exc:
        fail(exc)
        return
    failed = [info["name"] for info in out.get("instruments", []) if not info["ok"]]
    if as_json:
        print(json.dumps(out, default=str))
    else:
        _print_text(out)
    if failed:
        n = len(out["instruments"])
        err.print(f"[red]error:[/red] {len(failed)} of {n} instruments failed: {', '.join(failed)}", markup=True)
        raise Exited(1)


def _instrument_kind(*, bench: bool, emulate: bool) -> bool:
    """True for emulators, False for the real instruments; neither is opened unless the command line says so."""
    if bench and emulate:
        raise InputError("--bench and --emulate exclude each other", where="command line")
    if not (bench or emulate):
        raise InputError(
            "opening instruments needs a choice: the real ones or emulators",
            where="command line",
            hint="add --bench for the instruments the protocol names, or --emulate",
        )
    return emulate


def _print_text(out: dict[str, Any]) -> None:
    for kind, found in out.get("discovered", {}).items():
        print(f"{kind}: {', '.join(found) if found else '(none)'}")
    for info in out.get("instruments", []):
        if not info["ok"]:
            print(f"{info['name']}: FAILED: {info['error']}")
            continue
        print(f"{info['name']}: ok: {info['identity']}")
        print(f"  channels: {info['channels']}")
        for what, text in info["limits"].items():
            print(f"  {what}: {text}")
        for key, value in (info.get("state") or {}).items():
            print(f"  {key}: {_short(value)}")


def _short(value: Any) -> str:
    if isinstance(value, list) and len(value) > 8:
        return f"[{', '.join(f'{v:g}' if isinstance(v, float) else str(v) for v in value[:8])}, ...] ({len(value)})"
    return str(value)


def _describe(protocol, emulated: bool) -> list[dict[str, Any]]:
    from aeqlab.backends.bench import probe_instruments

    if not emulated:
        return probe_instruments(protocol)
    from aeqlab.backends.emulate import start_emulators

    emus = start_emulators(protocol)
    try:
        return probe_instruments(protocol, emus.resources)
    finally:
        emus.stop()


def discover_resources() -> dict[str, list[str]]:
    """VISA resources (a LAN broadcast), serial ports and NI-DAQ devices. Only for ``--discover``."""
    found: dict[str, list[str]] = {}
    try:
        import pyvisa

        found["visa"] = list(pyvisa.ResourceManager("@py").list_resources("?*"))  # --discover alone gets here
    except Exception as exc:  # noqa: BLE001 - discovery reports what it cannot search
        found["visa"] = [f"(search failed: {exc.__class__.__name__})"]
    from serial.tools import list_ports

    found["serial"] = [p.device for p in list_ports.comports()]
    try:
        import nidaqmx.errors
        import nidaqmx.system

        found["nidaq"] = list(nidaqmx.system.System.local().devices.device_names)
    except nidaqmx.errors.DaqNotFoundError:
        found["nidaq"] = ["(NI-DAQmx is not installed)"]
    except Exception as exc:  # noqa: BLE001
        found["nidaq"] = [f"(search failed: {exc.__class__.__name__})"]
    return found
