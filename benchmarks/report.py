"""Shared benchmark plumbing: machine description and appending a table to RESULTS.md."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import shlex
import sys
from importlib import metadata
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def versions(*packages: str) -> str:
    parts = [f"python {platform.python_version()}"]
    for name in packages:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} (not installed)")
    return ", ".join(parts)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def append_results(title: str, table: str, packages: tuple[str, ...], notes: str = "") -> None:
    """Append a dated section (command, machine, versions, table, notes) to benchmarks/RESULTS.md."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = [f"## {title} ({stamp})", "", f"- command: `{command}`", f"- machine: {machine()}",
               f"- versions: {versions(*packages)}", "", table, ""]
    if notes:
        section += [notes, ""]
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in this folder; newest last.\n\n")
    with RESULTS.open("a") as f:
        f.write("\n".join(section) + "\n")
