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

from aeqlab.cli.app import app, err, fail
from aeqlab.errors import AeqlabError, InputError


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
    previous = {s: signal.signal(s, lambda *a: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
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
            signal.signal(sig, handler)
        if log is not None:
            emus.write_logs(log)
    raise typer.Exit(0)


@app.command()
def instruments(
    protocol_path: Annotated[
        Path | None, typer.Argument(metavar="[PROTOCOL]", help="protocol whose instruments to open")
    ] = None,
    discover: Annotated[
        bool, typer.Option("--discover", help="search VISA (LAN broadcast), serial ports and NI-DAQ devices")
    ] = False,
    emulated: Annotated[bool, typer.Option("--emulate", help="open the protocol's instruments on emulators")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Open each configured instrument and print identity, channels, limits and state, changing nothing."""
    try:
        out: dict[str, Any] = {}
        if discover:
            out["discovered"] = discover_resources()
        if protocol_path is not None:
            out["instruments"] = _describe(_load(protocol_path), emulated)
        elif not discover:
            raise InputError("name a protocol, or ask for --discover", where="command line")
    except AeqlabError as exc:
        fail(exc)
        return
    if as_json:
        print(json.dumps(out, default=str))
        return
    for kind, found in out.get("discovered", {}).items():
        print(f"{kind}: {', '.join(found) if found else '(none)'}")
    for info in out.get("instruments", []):
        print(f"{info['name']}: {info['identity']}")
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
    from aeqlab.backends.bench import describe, open_instruments
    from aeqlab.backends.emulate import start_emulators

    emus = start_emulators(protocol) if emulated else None
    try:
        opened = open_instruments(protocol, emus.resources if emus else None)
        try:
            return [describe(name, obj) for name, obj in opened.items()]
        finally:
            for obj in opened.values():
                obj.close()
    finally:
        if emus is not None:
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
