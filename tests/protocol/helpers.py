"""Paths and small helpers shared by the protocol tests."""

from __future__ import annotations

import re
from pathlib import Path

from clirunner import Result, run_cli

ROOT = Path(__file__).resolve().parents[2]
PROTOCOLS = ROOT / "protocols"
BROKEN = Path(__file__).resolve().parent / "broken"
EXAMPLES = sorted(PROTOCOLS.glob("*.yaml"))
TEMPLATES = sorted((ROOT / "aeqlab" / "templates").glob("*.yaml"))
SCHEMA_LINE = "# yaml-language-server: $schema=aeqlab.schema.json"

# one problem: "file:line:col: key.path: message" or, when no line applies, "file: message"
PROBLEM = re.compile(r"^\S.*?(:\d+:\d+)?: \S.*$")


def aeqlab(*args: str, cwd: Path | None = None) -> Result:
    """Run the CLI as a user would (in this process: exit code, stdout and stderr as a process leaves them)."""
    return run_cli(*args, cwd=cwd)
