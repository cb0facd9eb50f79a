"""Paths and small helpers shared by the protocol tests."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "protocols"
BROKEN = Path(__file__).resolve().parent / "broken"
EXAMPLES = sorted(PROTOCOLS.glob("*.yaml"))
TEMPLATES = sorted((ROOT / "aeqlab" / "templates").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=aeqlab.schema.json"

# one problem: "file:line:col: key.path: message" or, when no line applies, "file: message"
PROBLEM = re.compile(r"^\S.*?(:\d+:\d+)?: \S.*$")


def aeqlab(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "aeqlab.cli", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )
