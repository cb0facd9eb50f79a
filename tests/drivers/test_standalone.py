"""Drivers stand alone: importable and usable with ``aeqlab`` made unimportable."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name == "aeqlab" or name.startswith("aeqlab."):
                raise ImportError(f"{{name}} is blocked")
            return None

    sys.meta_path.insert(0, Block())
    sys.path.insert(0, {tests!r})
    import drivers, drivers.registry, drivers.smu, drivers.qdac2, drivers.serial_board, drivers.nidaq
    import drivers.keithley2450, drivers.keysight_344xx, drivers.guard, drivers.safe
    import sim_backends.instruments
    from expected import Instrument
    from drivers.base import DriverSettings
    from drivers.errors import LimitError
    from drivers.qdac2 import QDac2
    from drivers.scpi import ScpiLink

    fake = Instrument("QDevil,QDAC-II,1,1", {{":sour1:volt": "0", ":sour2:volt": "0.5"}})
    link = ScpiLink("qdac", fake, expect=QDac2.expect)
    q = QDac2("qdac", link, 2, DriverSettings())
    q.write([0], [1.25])
    assert fake.state[":sour1:volt"] == "1.25", fake.state
    try:
        q.write([0], [11.0])
    except LimitError as exc:
        assert "outside its limits" in exc.one_line()
    else:
        raise SystemExit("no LimitError")
    assert q.safe_state() == [], "safe state not confirmed"
    assert fake.state[":sour2:volt"] == "0"
    assert not any(m == "aeqlab" or m.startswith("aeqlab.") for m in sys.modules)
    print("standalone ok")
    """
)


def test_drivers_import_and_work_without_aeqlab():
    script = SCRIPT.format(tests=str(ROOT / "tests" / "drivers"))
    proc = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "standalone ok" in proc.stdout


def test_aeqlab_errors_catch_driver_errors():
    from aeqlab.errors import AeqlabError
    from drivers.errors import InstrumentError

    exc = InstrumentError("smu: no reply", hint="check the cable")
    assert isinstance(exc, AeqlabError) and exc.exit_code == 1
    assert exc.one_line() == "smu: no reply (check the cable)"
