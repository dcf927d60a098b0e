"""The reviewer's adversarial pass over wave 3 (issue 23): hostile command lines, damaged files and
interruptions against the formats, the Dask executor, merge, the camera pipeline, clips and
inspect. Each case runs ``blurgen`` in a fresh process and records whether it kept the contract
(DESIGN.md: exit 2 for a bad command line, 1 for a failure while working, one line, no traceback,
no output presented as complete when it is not, resume to the arrays of an uninterrupted run).

    python tools/adversarial_wave3.py WORKDIR [SURFACE ...]   # prints a table, writes WORKDIR/results.json

Needs the tests folder on ``sys.path`` (its real-client readers) and, for the full-disk and
read-only cases, root to mount small tmpfs folders (skipped otherwise).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

SMALL = ["--size", "32", "--kernel-size", "15", "--length-px", "10"]
PROGRESS = ("make: ", "export: ", "blurgen: first run", "merge: ")


@dataclass
class Run:
    rc: int
    out: str
    err: str
    seconds: float


@dataclass
class Pass:
    """The cases of one pass: surface -> list of (name, ok, detail)."""
    root: str
    results: dict = field(default_factory=dict)

    def path(self, *names: str) -> str:
        return os.path.join(self.root, *names)

    def record(self, surface: str, name: str, ok: bool, detail: str = "") -> bool:
        self.results.setdefault(surface, []).append((name, bool(ok), detail))
        print(f"[{'ok ' if ok else 'FAIL'}] {surface}: {name}{'' if ok else ' -- ' + detail}", flush=True)
        return ok


def blurgen(*args: str, cwd: str | None = None, timeout: float = 180, fsize: int | None = None,
            env: dict | None = None) -> Run:
    """``blurgen ARGS`` in a fresh process (rc 124 when it outlived ``timeout``)."""
    def limit():
        if fsize is not None:
            import resource
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    start = time.monotonic()
    try:
        done = subprocess.run(["blurgen", *args], capture_output=True, timeout=timeout, cwd=cwd,
                              preexec_fn=limit, env=None if env is None else {**os.environ, **env})
    except subprocess.TimeoutExpired as exc:
        return Run(124, "", (exc.stderr or b"").decode("utf-8", "replace"), time.monotonic() - start)
    return Run(done.returncode, done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"),
               time.monotonic() - start)


def error_lines(run: Run) -> list[str]:
    return [line for line in run.err.strip().splitlines() if line.strip() and not line.startswith(PROGRESS)]


def failed_well(run: Run, rc: int, *fragments: str) -> tuple[bool, str]:
    """Exit ``rc``, no traceback, the fragments in the message; exit 1: exactly one line (exit 2:
    click's usage block is allowed)."""
    lines = error_lines(run)
    text = "\n".join(lines)
    problems = []
    if run.rc != rc:
        problems.append(f"exit {run.rc}, not {rc}")
    if "Traceback" in run.err:
        problems.append("traceback")
    if rc == 1 and len(lines) != 1:
        problems.append(f"{len(lines)} error lines")
    problems += [f"no {f!r}" for f in fragments if f.lower() not in text.lower()]
    return not problems, "; ".join(problems) + (f" | {text[-300:]!r}" if problems else "")


def succeeded(run: Run) -> tuple[bool, str]:
    ok = run.rc == 0 and "Traceback" not in run.err
    return ok, "" if ok else f"exit {run.rc}: {run.err.strip()[-300:]!r}"


def same_as(reference: str, fmt: str, out: str) -> tuple[bool, str]:
    """The output read by its real client holds the arrays of the HDF5 ``reference``."""
    from format_clients import READERS, assert_same_as_hdf5
    from pairs_compare import assert_same_arrays

    try:
        if fmt == "hdf5":
            assert_same_arrays(reference, out)
        else:
            assert_same_as_hdf5(reference, READERS[fmt](out))
    except Exception as exc:  # noqa: BLE001 -- any difference is this case's finding
        return False, f"{type(exc).__name__}: {str(exc)[:200]}"
    return True, ""


def interrupt(args: list[str], after_s: float, sig: int, cwd: str | None = None, blocks_of: str | None = None) -> int:
    """Start ``blurgen ARGS``, send ``sig`` to its process group ``after_s`` after it started (or,
    with ``blocks_of``, after the first finished block of that output appeared); its exit code."""
    import glob

    proc = subprocess.Popen(["blurgen", *args], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    while blocks_of and proc.poll() is None and not glob.glob(glob.escape(blocks_of) + ".parts/block-*"):
        time.sleep(0.05)
    try:
        return proc.wait(timeout=after_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, sig)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            return -999


def mount_tmpfs(path: str, size_kb: int, readonly: bool = False) -> bool:
    os.makedirs(path, exist_ok=True)
    options = f"size={size_kb}k" + (",ro" if readonly else "")
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", path], capture_output=True).returncode == 0


def unmount(path: str) -> None:
    subprocess.run(["umount", path], capture_output=True)


def main(argv: list[str]) -> int:
    from adversarial_wave3_cases import SURFACES  # tools/ sits on sys.path as this script's folder

    root = os.path.abspath(argv[0])
    os.makedirs(root, exist_ok=True)
    chosen = argv[1:] or list(SURFACES)
    p = Pass(root)
    for name in chosen:
        SURFACES[name](p)
    with open(p.path("results.json"), "w", encoding="utf-8") as handle:
        json.dump(p.results, handle, indent=1)
    print("\nsurface                 run  passed  failing")
    for surface, cases in p.results.items():
        bad = [c for c in cases if not c[1]]
        print(f"{surface:22s} {len(cases):4d} {len(cases) - len(bad):7d} {len(bad):8d}")
        for name, _, detail in bad:
            print(f"    FAIL {name}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
