"""Adversarial cases for ``make --format folders|lmdb|webdataset`` and ``export``."""

from __future__ import annotations

import glob
import io
import os
import random
import shutil
import signal
import tarfile

from adversarial_wave3 import SMALL, blurgen, failed_well, interrupt, mount_tmpfs, same_as, succeeded, unmount

FORMATS = ("folders", "lmdb", "webdataset")
BIG = ["--size", "64", "--kernel-size", "15", "--length-px", "10", "--block-size", "8", "--tar-mb", "0.05"]


def only_for(fmt: str, args: list[str]) -> list[str]:
    """``args`` without the options that ``fmt`` refuses as not applying to it (``--tar-mb``
    outside WebDataset, ``--png-level`` for HDF5)."""
    refused = {"--tar-mb"} if fmt != "webdataset" else set()
    refused |= {"--png-level"} if fmt == "hdf5" else set()
    out, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg in refused:
            skip = True
        else:
            out.append(arg)
    return out


def references(p) -> tuple[str, str]:
    """HDF5 of 12 small pairs and of 240 64x64 pairs (seed 5), made once."""
    small, big = p.path("ref12.h5"), p.path("ref240.h5")
    if not os.path.exists(small):
        blurgen("make", "--n", "12", "--seed", "5", "--out", small, "--workers", "1", *SMALL)
    if not os.path.exists(big):
        blurgen("make", "--n", "240", "--seed", "5", "--out", big, "--workers", "2", *only_for("hdf5", BIG))
    return small, big


def out_for(p, fmt: str, name: str) -> str:
    folder = p.path("formats", name)
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, "out")


def make12(out: str, fmt: str, *extra: str, **kw):
    return blurgen("make", *only_for(fmt, ["--n", "12", "--seed", "5", "--out", out, "--format", fmt, "--workers",
                                           "1", "--block-size", "4", "--tar-mb", "0.02", *SMALL]), *extra, **kw)


def basic(p) -> None:
    ref, _ = references(p)
    for fmt in FORMATS:
        out = out_for(p, fmt, f"basic-{fmt}")
        ok, why = succeeded(make12(out, fmt))
        p.record("formats", f"{fmt}: make matches HDF5 via real reader", ok and same_as(ref, fmt, out)[0], why)
        p.record("formats", f"{fmt}: existing out refused", *failed_well(make12(out, fmt), 1, "exists"))
        ok, why = succeeded(make12(out, fmt, "--overwrite"))
        p.record("formats", f"{fmt}: --overwrite remakes identical", ok and same_as(ref, fmt, out)[0], why)
        ok, why = succeeded(make12(out, fmt, "--resume"))
        p.record("formats", f"{fmt}: --resume of a finished output", ok or "exists" in why, why)
        target = out_for(p, fmt, f"file-{fmt}")
        open(target if fmt != "webdataset" else target + "-000000.tar", "w").write("precious")
        r = make12(target, fmt)
        p.record("formats", f"{fmt}: out is a regular file", *failed_well(r, 1))
        fifo = out_for(p, fmt, f"fifo-{fmt}")
        os.mkfifo(fifo if fmt != "webdataset" else fifo + ".json")
        p.record("formats", f"{fmt}: out is a FIFO, bounded", *failed_well(make12(fifo, fmt, timeout=60), 1))
        loop = out_for(p, fmt, f"loop-{fmt}")
        os.symlink(loop, loop) if fmt != "webdataset" else os.symlink(loop + "-000000.tar", loop + "-000000.tar")
        p.record("formats", f"{fmt}: out is a symlink loop", *failed_well(make12(loop, fmt, timeout=60), 1))
        inside = os.path.join(out_for(p, fmt, f"under-file-{fmt}") + ".txt", "out")
        open(os.path.dirname(inside), "w").write("x")
        p.record("formats", f"{fmt}: out under a regular file", *failed_well(make12(inside, fmt), 1))


def read_only_and_full(p) -> None:
    _, big = references(p)
    ro, tiny = p.path("formats", "ro"), p.path("formats", "tiny")
    if not (mount_tmpfs(ro, 64, readonly=True) and mount_tmpfs(tiny, 400)):
        p.record("formats", "tmpfs mounts (root) available", False, "cannot mount tmpfs: skipped")
        return
    try:
        for fmt in FORMATS:
            r = make12(os.path.join(ro, "out"), fmt)
            p.record("formats", f"{fmt}: read-only place", *failed_well(r, 1))
            out = os.path.join(tiny, f"out-{fmt}")
            r = blurgen("make", "--n", "240", "--seed", "5", "--out", out, "--format", fmt, "--workers", "2", *BIG)
            ok, why = failed_well(r, 1)
            complete = os.path.exists(out) if fmt != "webdataset" else os.path.exists(out + ".json")
            p.record("formats", f"{fmt}: full disk is one line, no output presented", ok and not complete, why)
            subprocess_remount(tiny, 400_000)
            r = blurgen("make", "--n", "240", "--seed", "5", "--out", out, "--format", fmt, "--workers", "2",
                        "--resume", *BIG)
            ok, why = succeeded(r)
            p.record("formats", f"{fmt}: resume after full disk identical", ok and same_as(big, fmt, out)[0], why)
            for leftover in glob.glob(os.path.join(tiny, "*")):
                shutil.rmtree(leftover) if os.path.isdir(leftover) else os.remove(leftover)
            subprocess_remount(tiny, 400)
            r = blurgen("make", "--n", "240", "--seed", "5", "--out", out, "--format", fmt, "--workers", "1",
                        *BIG, fsize=150_000)
            p.record("formats", f"{fmt}: ulimit -f is one line", *failed_well(r, 1))
    finally:
        unmount(ro)
        unmount(tiny)


def subprocess_remount(path: str, size_kb: int) -> None:
    import subprocess
    subprocess.run(["mount", "-o", f"remount,size={size_kb}k", path], check=True)


def interruptions(p, seed: int = 23) -> None:
    _, big = references(p)
    rng = random.Random(seed)
    for fmt in FORMATS:
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGKILL, "SIGKILL")):
            out = out_for(p, fmt, f"kill-{name}-{fmt}")
            args = ["make", "--n", "240", "--seed", "5", "--out", out, "--format", fmt, *BIG]
            flag: list[str] = []
            for _ in range(3):
                interrupt([*args, "--workers", rng.choice(["1", "2"]), *flag], rng.uniform(0.0, 1.5), sig, blocks_of=out)
                flag = ["--resume"]
            r = blurgen(*args, "--workers", "2", "--resume")
            ok, why = succeeded(r)
            p.record("formats", f"{fmt}: {name} x3 then --resume identical", ok and same_as(big, fmt, out)[0], why)


def _block_tars(out: str) -> list[str]:
    return sorted(glob.glob(os.path.join(out + ".parts", "block-*.tar")))


def _foreign_tar(path: str) -> None:
    with tarfile.open(path, "w") as tar:
        data = b"not a blurgen block"
        info = tarfile.TarInfo("../../evil.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _flip(path: str) -> None:
    with open(path, "r+b") as handle:
        handle.seek(os.path.getsize(path) // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0x40]))


DAMAGE = {
    "flipped byte": _flip,
    "truncated": lambda path: os.truncate(path, os.path.getsize(path) // 3),
    "emptied": lambda path: os.truncate(path, 0),
    "foreign tar with ../ names": _foreign_tar,
    "symlink to /etc/passwd": lambda path: (os.remove(path), os.symlink("/etc/passwd", path)),
    "FIFO": lambda path: (os.remove(path), os.mkfifo(path)),
    "a directory": lambda path: (os.remove(path), os.mkdir(path)),
}


def damaged_parts(p) -> None:
    _, big = references(p)
    for fmt in FORMATS:
        for what, damage in DAMAGE.items():
            out = out_for(p, fmt, f"damage-{fmt}-{what.replace(' ', '_').replace('/', '_')}")
            args = ["make", "--n", "240", "--seed", "5", "--out", out, "--format", fmt, "--workers", "1", *BIG]
            interrupt(args, 0.3, signal.SIGKILL, blocks_of=out)
            blocks = _block_tars(out)
            if len(blocks) < 2:
                p.record("formats", f"{fmt}: damaged block ({what})", False, "no kept blocks to damage (slow?)")
                continue
            damage(blocks[len(blocks) // 2])
            r = blurgen(*args, "--resume", timeout=120)
            ok, why = succeeded(r)
            if ok:
                ok, why = same_as(big, fmt, out)
            else:
                ok, why = failed_well(r, 1)
            escaped = os.path.exists(os.path.join(os.path.dirname(os.path.dirname(out)), "evil.txt"))
            p.record("formats", f"{fmt}: damaged block ({what}) then --resume", ok and not escaped, why)
        stray = out_for(p, fmt, f"stray-{fmt}")
        args = ["make", "--n", "240", "--seed", "5", "--out", stray, "--format", fmt, "--workers", "1", *BIG]
        interrupt(args, 0.3, signal.SIGKILL, blocks_of=stray)
        os.makedirs(stray + ".parts", exist_ok=True)
        shutil.copy(big, os.path.join(stray + ".parts", "block-0000000999-8.tar"))
        r = blurgen(*args, "--resume")
        ok, why = succeeded(r)
        p.record("formats", f"{fmt}: foreign file named like a block", ok and same_as(big, fmt, stray)[0] or
                 failed_well(r, 1)[0], why)


MISMATCH = {"--seed 6": ["--seed", "6"], "--png-level 6": ["--png-level", "6"], "--tar-mb 0.5": ["--tar-mb", "0.5"],
            "--size 48": ["--size", "48"], "--n 200": ["--n", "200"]}


def mismatched_resume(p) -> None:
    for fmt in FORMATS:
        out = out_for(p, fmt, f"mismatch-{fmt}")
        base = ["make", "--n", "1200", "--seed", "5", "--out", out, "--format", fmt, "--workers", "1",
                *only_for(fmt, BIG)]
        interrupt(base, 0.3, signal.SIGKILL, blocks_of=out)
        for what, change in MISMATCH.items():
            if what == "--tar-mb 0.5" and fmt != "webdataset":
                continue
            args = list(base)
            for flag_at in range(0, len(change), 2):
                if change[flag_at] in args:
                    args[args.index(change[flag_at]) + 1] = change[flag_at + 1]
                else:
                    args += change[flag_at:flag_at + 2]
            r = blurgen(*args, "--resume")
            ok, why = failed_well(r, 1)
            if not os.path.isdir(out + ".parts"):
                p.record("formats", f"{fmt}: --resume with {what}", False, "the run was not interrupted (harness)")
                continue
            p.record("formats", f"{fmt}: --resume with {what}", ok, why)
        other = "folders" if fmt != "folders" else "lmdb"
        r = blurgen(*[other if a == fmt else a for a in base], "--resume")
        p.record("formats", f"{fmt}: --resume as --format {other}", *failed_well(r, 1))


def shards_and_values(p) -> None:
    ref, _ = references(p)
    for fmt in FORMATS:
        for shard in ("2/2", "0/0", "-1/2", "a/b", "1/", "0/13", "1/1"):
            r = make12(out_for(p, fmt, f"shard-{fmt}-{shard.replace('/', '_')}"), fmt, "--shard", shard)
            p.record("formats", f"{fmt}: --shard {shard}", *failed_well(r, 2, "--shard"))
        parts = []
        for i in range(3):
            out = out_for(p, fmt, f"shard3-{fmt}-{i}")
            ok, why = succeeded(make12(out, fmt, "--shard", f"{i}/3"))
            parts.append(ok)
        p.record("formats", f"{fmt}: --shard i/3 each works", all(parts), "")
        for flag, value in (("--tar-mb", "100000"), ("--tar-mb", "1e9"), ("--tar-mb", "nan"), ("--tar-mb", "inf"),
                            ("--tar-mb", "0"), ("--tar-mb", "-1"), ("--png-level", "10"), ("--png-level", "-1"),
                            ("--png-level", "1e3"), ("--png-level", "9")):
            out = out_for(p, fmt, f"value-{fmt}-{flag}-{value}")
            r = make12(out, fmt, flag, value)
            good = value in ("100000", "9") and (flag != "--tar-mb" or fmt == "webdataset")
            ok, why = succeeded(r) if good else failed_well(r, 2, flag)
            if good and ok:
                ok, why = same_as(ref, fmt, out)
            p.record("formats", f"{fmt}: {flag} {value}", ok, why)


PREFIXES = ("sp ace", "per%cent", "br[a]ck*t?", "dash-000001", "ünï©ødé", "-leading", "new\nline", "col:on")


def odd_prefixes(p) -> None:
    ref, _ = references(p)
    for prefix in PREFIXES:
        folder = p.path("formats", "prefix-" + str(abs(hash(prefix))))
        os.makedirs(folder, exist_ok=True)
        out = os.path.join(folder, prefix)
        r = make12(out, "webdataset", cwd=folder)
        ok, why = succeeded(r)
        if ok:
            ok, why = same_as(ref, "webdataset", out)
        else:
            ok, why = failed_well(r, 2)
        p.record("formats", f"webdataset prefix {prefix!r}", ok, why)


def export_cases(p) -> None:
    ref, big = references(p)
    rng_export = random.Random(5)
    for fmt in FORMATS:
        out = out_for(p, fmt, f"export-{fmt}")
        ok, why = succeeded(blurgen("export", ref, "--format", fmt, "--out", out, "--workers", "1",
                                    *only_for(fmt, ["--tar-mb", "0.02"])))
        p.record("export", f"{fmt}: export matches HDF5", ok and same_as(ref, fmt, out)[0], why)
        r = blurgen("export", ref, "--format", fmt, "--out", out)
        p.record("export", f"{fmt}: export onto existing out", *failed_well(r, 1, "exists"))
        for sig, name in ((signal.SIGINT, "SIGINT"), (signal.SIGKILL, "SIGKILL")):
            out = out_for(p, fmt, f"export-{name}-{fmt}")
            args = ["export", big, "--format", fmt, "--out", out, *only_for(fmt, ["--tar-mb", "0.05"]), "--workers", "1"]
            interrupt(args, rng_export.uniform(0.0, 1.0), sig, blocks_of=out)
            ok, why = succeeded(blurgen(*args, "--resume"))
            p.record("export", f"{fmt}: export {name} then --resume identical", ok and same_as(big, fmt, out)[0], why)
    sources = {"missing src": (p.path("nope.h5"), 2), "text file": (_text(p), 1), "FIFO src": (_fifo(p), 2),
               "directory src": (p.path("formats"), 2), "parts folder": (_parts(p), 2),
               "src == out": (ref, 2)}  # 2: found from the command line before any work
    for what, (src, rc) in sources.items():
        out = ref if what == "src == out" else out_for(p, "folders", f"export-bad-{what.replace(' ', '_')}")
        r = blurgen("export", src, "--format", "folders", "--out", out, timeout=60)
        p.record("export", f"export of {what}", *failed_well(r, rc))
    r = blurgen("export", ref, "--format", "hdf5", "--out", p.path("formats", "x.h5"))
    p.record("export", "export --format hdf5", *failed_well(r, 2))


def _text(p) -> str:
    path = p.path("formats", "text.h5")
    open(path, "w").write("hello")
    return path


def _fifo(p) -> str:
    path = p.path("formats", "fifo.h5")
    if not os.path.exists(path):
        os.mkfifo(path)
    return path


def _parts(p) -> str:
    out = out_for(p, "hdf5", "parts-src")
    interrupt(["make", "--n", "240", "--out", out + ".h5", "--workers", "1", *BIG], 2.0, signal.SIGKILL)
    return out + ".h5.parts"


def run_all(p) -> None:
    for step in (basic, read_only_and_full, interruptions, damaged_parts, mismatched_resume, shards_and_values,
                 odd_prefixes):
        step(p)


def run_export(p) -> None:
    export_cases(p)
