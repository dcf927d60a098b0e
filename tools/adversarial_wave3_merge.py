"""Adversarial cases for ``merge`` (virtual and --copy) and ``inspect`` of this wave's outputs."""

from __future__ import annotations

import os
import resource
import shutil
import signal

from adversarial_wave3 import SMALL, blurgen, failed_well, interrupt, same_as, succeeded

SHARD = ["make", "--n", "12", "--seed", "5", "--workers", "1", *SMALL]


def _shards(p) -> str:
    """Folder with s0/s1 (shards 0/2, 1/2 of seed 5), other.h5 (1/2 of seed 6), full.h5 and m.h5."""
    folder = p.path("merge", "base")
    if not os.path.exists(os.path.join(folder, "m.h5")):
        os.makedirs(folder, exist_ok=True)
        for name, extra in (("s0.h5", ["--shard", "0/2"]), ("s1.h5", ["--shard", "1/2"]), ("full.h5", [])):
            blurgen(*SHARD, *extra, "--out", os.path.join(folder, name))
        blurgen(*[a if a != "5" else "6" for a in SHARD], "--shard", "1/2", "--out", os.path.join(folder, "other.h5"))
        blurgen("merge", "s0.h5", "s1.h5", "--out", "m.h5", cwd=folder)
    return folder


def _copy(p, name: str) -> str:
    folder = p.path("merge", name)
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(_shards(p), folder, symlinks=True)
    return folder


REPLACE = {
    "deleted": lambda f: os.remove(f),
    "another seed": lambda f: shutil.copy(os.path.join(os.path.dirname(f), "other.h5"), f),
    "the unsharded file": lambda f: shutil.copy(os.path.join(os.path.dirname(f), "full.h5"), f),
    "the other shard": lambda f: shutil.copy(os.path.join(os.path.dirname(f), "s0.h5"), f),
    "a FIFO": lambda f: (os.remove(f), os.mkfifo(f)),
    "symlink to /etc/passwd": lambda f: (os.remove(f), os.symlink("/etc/passwd", f)),
    "truncated": lambda f: os.truncate(f, 3000),
    "a directory": lambda f: (os.remove(f), os.mkdir(f)),
}


def shards_changed(p) -> None:
    for what, change in REPLACE.items():
        folder = _copy(p, "changed-" + what.replace(" ", "_").replace("/", "_"))
        change(os.path.join(folder, "s1.h5"))
        for command in (["inspect", "m.h5"], ["export", "m.h5", "--format", "folders", "--out", "ex"],
                        ["merge", "m.h5", "--out", "again.h5", "--copy"]):
            r = blurgen(*command, cwd=folder, timeout=60)
            p.record("merge", f"shard {what} after merging: {command[0]}", *failed_well(r, 1, "s1.h5"))


def merge_inputs(p) -> None:
    folder = _copy(p, "inputs")
    full = os.path.join(folder, "full.h5")
    ok, why = succeeded(blurgen("merge", "m.h5", "--out", "copy.h5", "--copy", cwd=folder))
    p.record("merge", "--copy of a virtual merge equals the unsharded file",
             ok and same_as(full, "hdf5", os.path.join(folder, "copy.h5"))[0], why)
    os.makedirs(os.path.join(folder, "up", "deeper"))
    ok, why = succeeded(blurgen("merge", "../../s0.h5", "../../s1.h5", "--out", "../v.h5", cwd=os.path.join(folder, "up", "deeper")))
    ok2, _ = succeeded(blurgen("merge", "up/v.h5", "--out", "c2.h5", "--copy", cwd=folder))
    p.record("merge", "relative paths with .. read from elsewhere", ok and ok2 and
             same_as(full, "hdf5", os.path.join(folder, "c2.h5"))[0], why)
    shutil.move(os.path.join(folder, "up", "v.h5"), os.path.join(folder, "moved.h5"))
    r = blurgen("inspect", os.path.join(folder, "moved.h5"))
    p.record("merge", "virtual merge moved away from its shards", *failed_well(r, 1, "missing"))
    os.mkfifo(os.path.join(folder, "fifo.h5"))
    r = blurgen("merge", "s0.h5", "fifo.h5", "--out", "f.h5", cwd=folder, timeout=60)
    p.record("merge", "a shard given as a FIFO", *failed_well(r, 2, "regular"))
    r = blurgen("merge", "s0.h5", "s0.h5", "s1.h5", "--out", "dup.h5", cwd=folder)
    p.record("merge", "the same shard twice", *failed_well(r, 1, "overlap"))
    r = blurgen("merge", "s0.h5", "other.h5", "--out", "mix.h5", cwd=folder)
    p.record("merge", "shards of two seeds", *failed_well(r, 1))
    r = blurgen("merge", "s0.h5", "--out", "half.h5", cwd=folder)
    p.record("merge", "one shard of two", *failed_well(r, 1))
    r = blurgen("merge", "s0.h5", "s1.h5", "--out", "s0.h5", cwd=folder)
    p.record("merge", "--out is one of the shards", *failed_well(r, 2))
    _edited_sources(p, folder)


def _edited_sources(p, folder: str) -> None:
    import h5py

    for name, value in (("names /etc/passwd", '["/etc/passwd", "s1.h5"]'), ("names ../outside.h5", '["../outside.h5"]'),
                        ("is not JSON", "{{{"), ("is empty", "[]")):
        target = os.path.join(folder, f"edit-{abs(hash(name))}.h5")
        shutil.copy(os.path.join(folder, "m.h5"), target)
        with h5py.File(target, "r+") as h5:
            h5.attrs["virtual_sources"] = value
        r = blurgen("inspect", target)
        p.record("merge", f"virtual_sources edited: {name}", *failed_well(r, 1))


def many_shards(p) -> None:
    folder = p.path("merge", "many")
    os.makedirs(folder, exist_ok=True)
    n = 300
    names = []
    for i in range(n):
        names.append(f"s{i}.h5")
        if not os.path.exists(os.path.join(folder, names[-1])):
            blurgen("make", "--n", str(n), "--seed", "1", "--workers", "1", *SMALL, "--shard", f"{i}/{n}",
                    "--out", os.path.join(folder, names[-1]))
    ok, why = succeeded(blurgen("merge", *names, "--out", "all.h5", cwd=folder))
    p.record("merge", f"{n} shards, virtual", ok, why)
    ok2, why2 = succeeded(blurgen("inspect", "all.h5", "--quick", cwd=folder))
    p.record("merge", f"{n} shards: inspect", ok2, why2)

    def low_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (128, 128))
    import subprocess
    done = subprocess.run(["blurgen", "merge", *names, "--out", "low.h5"], cwd=folder, capture_output=True,
                          text=True, preexec_fn=low_limit, timeout=300)
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    p.record("merge", f"{n} shards under ulimit -n 128", done.returncode in (1, 2) and len(lines) <= 4 and
             "Traceback" not in done.stderr and "ulimit" in done.stderr, done.stderr[-300:])


def inspect_outputs(p) -> None:
    folder = p.path("inspect")
    os.makedirs(folder, exist_ok=True)
    for fmt in ("folders", "lmdb", "webdataset"):
        out = os.path.join(folder, fmt)
        blurgen("make", "--n", "4", "--format", fmt, "--out", out, "--workers", "1", *SMALL)
        r = blurgen("inspect", out if fmt != "webdataset" else out + "-000000.tar")
        ok, why = succeeded(r) if r.rc == 0 else failed_well(r, 1)
        p.record("inspect", f"finished {fmt} output", ok, why + f" | exit {r.rc}: {r.err.strip()[-160:]}")
    clips = os.path.join(folder, "clips.h5")
    blurgen("make", "--n", "2", "--size", "32", "--motion", "camera3d", "--clips", "3", "--frame-size", "96x96",
            "--clip-margin", "16", "--camera-steps", "16", "--workers", "1", "--out", clips)
    p.record("inspect", "clips file", *succeeded(blurgen("inspect", clips, "--png", clips + ".png")))
    for command in (["export", clips, "--format", "folders", "--out", clips + ".dir"],
                    ["merge", clips, os.path.join(_shards(p), "s0.h5"), "--out", os.path.join(folder, "cm.h5")],
                    ["eval", "--checkpoint", clips, "--data", clips]):
        r = blurgen(*command)
        p.record("clips", f"clips file given to {command[0]}", *failed_well(r, 1) if r.rc != 2 else failed_well(r, 2))
    _inspect_damaged(p, folder)


def _inspect_damaged(p, folder: str) -> None:
    out = os.path.join(folder, "running.h5")
    interrupt(["make", "--n", "400", "--size", "64", "--out", out, "--workers", "1", "--kernel-size", "15",
               "--length-px", "10"], 0.5, signal.SIGKILL, blocks_of=out)
    p.record("inspect", "killed run (parts folder)", *succeeded(blurgen("inspect", out)))
    target = os.path.join(folder, "trunc.h5")
    shutil.copy(os.path.join(_shards(p), "full.h5"), target)
    os.truncate(target, os.path.getsize(target) // 2)
    p.record("inspect", "truncated pairs file", *failed_well(blurgen("inspect", target), 1))
