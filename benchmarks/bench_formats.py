"""Output formats, export, the Dask executor and virtual merge, as ratios measured in one run.

* encode-only: the same pairs' two PNGs encoded by --workers processes, no other work (the
  encoding timed inside the workers, start-up excluded): the ceiling for every PNG format;
* make --format hdf5: the pairs alone; "make + encode" = 1 / (1/hdf5 + 1/encode-only) is the
  best a PNG format can reach when each pair is made then encoded (the HDF5 rate includes its own
  compression, so this ceiling is slightly generous); make --format F is reported as its share;
* export --format F (from the HDF5 file) vs encode-only;
* all of them with OpenCV at --png-level and with the fpng encoder (when installed);
* Dask: a LocalCluster of --workers single-threaded workers, start-up timed apart, a first run
  (warming the workers' imports) and steady-state runs vs the local pool (which spawns its
  workers in every run, so its rate includes that start-up);
* png: one thread's ms and kB per image of blurgen's OpenCV settings (one row filter) against
  libpng's adaptive filter choice (OpenCV's default), at level 0 and --png-level, and fpng;
* virtual merge of 2 shards x 5,000 pairs of 16x16 and of 64x64 images (16x the data), timed
  alternately after both exist.

Every case runs --rounds times, the cases interleaved; the table holds medians. Rates are whole
runs (pool start-up, assembly and the final rename included), durable=False; export also
as a user's usually runs: the source read from disk, durable.

CPU ms per pair (user + system, every process of a run) is printed beside the export rates: unlike
the rates it hardly depends on what else the machine runs.

Usage: python benchmarks/bench_formats.py [--n 200] [--size 256] [--workers 2] [--png-level 1] [--rounds 3]
       [--sections make,export,dask,merge,png] [--encoders opencv,fpng]
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import report  # noqa: E402

FORMATS = ("folders", "lmdb", "webdataset")
TRASH = ".trash"


def _encode(args):
    path, lo, hi, level, encoder = args
    from blurgen.runs.samples import encode_png
    from blurgen.runs.workers import limit_threads_here
    from blurgen.store.reader import PairsFile

    limit_threads_here()
    with PairsFile(path) as f:
        blurred, sharp, _ = f[lo:hi]
    began, cpu = time.perf_counter(), time.process_time()
    for i in range(hi - lo):
        encode_png(blurred[i], level, encoder), encode_png(sharp[i], level, encoder)
    return time.perf_counter() - began, time.process_time() - cpu


def encode_rate(path: str, n: int, workers: int, level: int, encoder: str) -> tuple[float, float]:
    """Pairs/s of the slowest worker's encoding, and the encoding's CPU ms per pair."""
    cuts = np.linspace(0, n, workers + 1).astype(int)
    with ProcessPoolExecutor(workers) as pool:
        times = list(pool.map(_encode, [(path, cuts[i], cuts[i + 1], level, encoder) for i in range(workers)]))
    return n / max(wall for wall, _ in times), 1000 * sum(cpu for _, cpu in times) / n


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the run's worker processes)."""
    import resource

    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def fresh(out: str) -> str:
    """Move an earlier run's ``out`` (a file, a folder or WebDataset tars) into a trash folder
    beside it, deleted with the rest at the end: every timed run makes everything (an
    --overwrite WebDataset run would reuse identical tars already in place). Not deleted now: on
    this machine's ext4 (no journal) creating a file scans past every inode freed in the last
    minutes while the inode table is dirty (the kernel's ``recently_deleted``), so a run right
    after deleting thousands of files spends ~0.5 ms per file creating them (perf: 15 % of a
    folders export) -- a cost of the benchmark loop, not of making a dataset."""
    trash = os.path.join(os.path.dirname(out), TRASH)
    os.makedirs(trash, exist_ok=True)
    for path in glob.glob(glob.escape(out) + "-*.tar"):
        os.unlink(path)  # a few large files (deleted now: 10,000 pairs' would fill the disk)
    for path in [out, out + ".json"]:
        if os.path.lexists(path):
            os.replace(path, os.path.join(trash, f"{len(os.listdir(trash))}-{os.path.basename(path)}"))
    return out


def timed_make(out, config, n, workers, sink=None, executor=None) -> float:
    from blurgen.runs.dataset import make_dataset

    result = make_dataset(fresh(out), config, n, seed=0, workers=workers, sink=sink, executor=executor,
                          durable=False)
    assert result.n_made == n
    return n / result.seconds


def evict(path: str) -> None:
    """Drop ``path`` from the page cache (written to disk first: dirty pages cannot be dropped)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def timed_export(src, out, n, workers, sink, as_the_cli=False) -> tuple[float, float]:
    """Pairs/s of a whole export, and its CPU ms per pair in all processes (start-up included).
    ``as_the_cli``: as a user's export usually runs, the source read from disk (not in the page
    cache) and every output file synced."""
    from blurgen.runs.export import export_file

    fresh(out)
    if as_the_cli:
        evict(src)
    cpu = cpu_seconds()
    result = export_file(src, out, sink, workers=workers, durable=as_the_cli)
    assert result.n_made == n
    return n / result.seconds, 1000 * (cpu_seconds() - cpu) / n


def sink_for(name: str, level: int, encoder: str):
    from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

    if name == "webdataset":
        return WebDatasetSink(level, samples_per_shard=100, png_encoder=encoder)
    return {"folders": FoldersSink, "lmdb": LmdbSink}[name](level, encoder)


def format_rounds(args, config, tmp: str, encoders: list[str]) -> dict[str, list]:
    """Rates (and CPU ms per pair) of every format case of ``args.sections``, ``args.rounds``
    interleaved rounds."""
    rates: dict[str, list] = {}
    h5 = os.path.join(tmp, "pairs.h5")
    if "make" not in args.sections:
        timed_make(h5, config, args.n, args.workers)  # the export source (else each round's make is)
    for _ in range(args.rounds):
        if "make" in args.sections:
            rates.setdefault("hdf5", []).append(timed_make(h5, config, args.n, args.workers))
        for encoder in encoders:
            rates.setdefault(f"encode {encoder}", []).append(encode_rate(h5, args.n, args.workers, args.png_level,
                                                                         encoder))
            for name in FORMATS:
                if "make" in args.sections:
                    out = os.path.join(tmp, f"make-{name}")
                    rates.setdefault(f"make {name} {encoder}", []).append(
                        timed_make(out, config, args.n, args.workers, sink_for(name, args.png_level, encoder)))
                if "export" in args.sections:
                    out = os.path.join(tmp, f"export-{name}")
                    rates.setdefault(f"export {name} {encoder}", []).append(
                        timed_export(h5, out, args.n, args.workers, sink_for(name, args.png_level, encoder)))
                    if encoder == encoders[0]:
                        rates.setdefault(f"export cli {name} {encoder}", []).append(
                            timed_export(h5, out, args.n, args.workers, sink_for(name, args.png_level, encoder),
                                         as_the_cli=True))
    return rates


def _median(values: list) -> tuple[float, float]:
    """Medians of ``(rate, CPU ms per pair)`` pairs (or of plain rates, CPU NaN)."""
    pairs = [v if isinstance(v, tuple) else (v, float("nan")) for v in values]
    return statistics.median(r for r, _ in pairs), statistics.median(c for _, c in pairs)


def format_rows(rates: dict[str, list], encoders: list[str], level: int) -> list[list[str]]:
    med = {key: _median(values) for key, values in rates.items()}
    rows = [["make --format hdf5 (the pairs alone)", f"{med['hdf5'][0]:.1f}", "", "", ""]] if "hdf5" in med else []
    for encoder in encoders:
        label = f"OpenCV level {level}" if encoder == "opencv" else "fpng"
        encode, encode_cpu = med[f"encode {encoder}"]
        rows.append([f"encode only, both PNGs ({label})", f"{encode:.1f}", "1.00", "", f"{encode_cpu:.2f}"])
        if "hdf5" in med:
            ceiling = 1 / (1 / med["hdf5"][0] + 1 / encode)
            rows.append([f"make + encode ceiling ({label})", f"{ceiling:.1f}", f"{ceiling / encode:.2f}", "1.00", ""])
            for name in FORMATS:
                rate = med[f"make {name} {encoder}"][0]
                rows.append([f"make --format {name} ({label})", f"{rate:.1f}", f"{rate / encode:.2f}",
                             f"{rate / ceiling:.2f}", ""])
        for name in FORMATS:
            for key, what in ((f"export {name} {encoder}", f"export --format {name} ({label})"),
                              (f"export cli {name} {encoder}",
                               f"export --format {name}, source on disk, durable ({label})")):
                if key in med:
                    rate, cpu = med[key]
                    rows.append([what, f"{rate:.1f}", f"{rate / encode:.2f}", "", f"{cpu:.2f}"])
    return rows


def dask_rows(args, config, tmp: str) -> list[list[str]]:
    """Cluster start-up, a first (warming) run and steady-state runs vs the local pool, interleaved."""
    import logging

    from distributed import LocalCluster

    from blurgen.runs.dask_executor import DaskExecutor

    began = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           silence_logs=logging.ERROR)
    startup = time.perf_counter() - began
    out = os.path.join(tmp, "dask.h5")
    try:
        executor = DaskExecutor(cluster.scheduler_address)
        first = timed_make(out, config, args.n, args.workers, executor=executor)
        local, dask = [], []
        for _ in range(args.rounds):
            local.append(timed_make(out, config, args.n, args.workers))
            dask.append(timed_make(out, config, args.n, args.workers, executor=executor))
    finally:
        cluster.close()
    local_rate = statistics.median(local)
    with_startup = args.n / (startup + args.n / first)
    return [["make hdf5, local pool (spawns its workers each run)", f"{local_rate:.1f}", "1.00"],
            [f"Dask LocalCluster {args.workers} workers: start-up alone", f"{startup:.1f} s", ""],
            ["Dask: first run on the new cluster, start-up included", f"{with_startup:.1f}",
             f"{with_startup / local_rate:.2f}"],
            ["Dask: steady state (warm workers)", f"{statistics.median(dask):.1f}",
             f"{statistics.median(dask) / local_rate:.2f}"]]


def png_rows(args, config, tmp: str) -> list[list[str]]:
    """One thread: ms and kB per 256x256 image of blurgen's OpenCV settings at levels 0 and
    --png-level against libpng's adaptive row filter (OpenCV's default, blurgen's before), and fpng;
    the first --n blurred and sharp images of a made file, settings interleaved over --rounds."""
    import cv2

    from blurgen.runs.samples import _opencv_png_params, encode_png
    from blurgen.runs.workers import limit_threads_here
    from blurgen.store.reader import PairsFile

    limit_threads_here(numba=False)
    h5 = os.path.join(tmp, "png.h5")
    timed_make(h5, config, args.n, args.workers)
    with PairsFile(h5) as f:
        blurred, sharp, _ = f[:]
    rgb = [*blurred, *sharp]
    bgr = [cv2.cvtColor(image, cv2.COLOR_RGB2BGR) for image in rgb]

    def adaptive(level: int):
        return lambda image: cv2.imencode(".png", image, _opencv_png_params(level)[:4])[1]

    def chosen(level: int):
        return lambda image: cv2.imencode(".png", image, _opencv_png_params(level))[1]

    cases = {f"OpenCV level {level}, {name}": (encode(level), bgr) for level in sorted({0, args.png_level})
             for name, encode in (("adaptive filter (before)", adaptive), ("blurgen's filter", chosen))}
    if "fpng" in args.encoders:
        cases["fpng"] = (lambda image: np.frombuffer(encode_png(image, encoder="fpng"), np.uint8), rgb)
    seconds: dict[str, list[float]] = {name: [] for name in cases}
    sizes: dict[str, int] = {}
    for _ in range(args.rounds):
        for name, (encode, images) in cases.items():
            began = time.process_time()
            sizes[name] = sum(encode(image).size for image in images)
            seconds[name].append(time.process_time() - began)
    rows = []
    for name in cases:
        ms = 1000 * statistics.median(seconds[name]) / len(rgb)
        rows.append([name, f"{ms:.2f}", f"{sizes[name] / len(rgb) / 1000:.1f}"])
    return rows


def make_shards(folder: str, width: int) -> list[str]:
    from fake_pairs import FakeConfig, FakeMaker

    from blurgen.runs.dataset import make_dataset

    paths = [os.path.join(folder, f"v{width}-{i}.h5") for i in range(2)]
    for i, path in enumerate(paths):
        make_dataset(path, FakeConfig(width=width, height=width), 10000, seed=0, workers=1, shard=(i, 2),
                     maker=FakeMaker(), durable=False, block_size=1000)
    return paths


def merge_rows(tmp: str, rounds: int) -> list[list[str]]:
    """Virtual merges of 2 x 5,000 pairs, 16x16 and 64x64, timed alternately once both exist."""
    from blurgen.store.merge import merge_files

    shards = {width: make_shards(tmp, width) for width in (16, 64)}
    os.sync()  # the shards' writeback must not land inside a timing
    seconds: dict[int, list[float]] = {16: [], 64: []}
    for _ in range(rounds + 1):
        for width, paths in shards.items():
            began = time.perf_counter()
            merge_files(paths, os.path.join(tmp, f".m{width}.tmp"), os.path.join(tmp, f"m{width}.h5"), "bench",
                        virtual=True)
            seconds[width].append(time.perf_counter() - began)
            os.unlink(os.path.join(tmp, f"m{width}.h5"))
    small, large = (statistics.median(seconds[w][1:]) for w in (16, 64))  # the first round warms imports
    sizes = [sum(os.path.getsize(p) for p in shards[w]) / 1e6 for w in (16, 64)]
    return [[f"virtual merge 2 x 5,000 pairs, 16x16 ({sizes[0]:.0f} MB) / 64x64 ({sizes[1]:.0f} MB)",
             f"{small:.3f} s / {large:.3f} s", f"{large / small:.2f}x for 16x the data"]]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--png-level", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sections", default="make,export,dask,merge,png",
                        help="comma-separated subset of make,export,dask,merge,png (make and export share the "
                             "encode-only baseline)")
    parser.add_argument("--encoders", default="opencv,fpng", help="PNG encoders to measure (fpng if installed)")
    args = parser.parse_args()
    args.sections = set(args.sections.split(","))
    from blurgen.pairs.pipeline import PairsConfig

    try:
        import fpng  # noqa: F401
    except ImportError:
        args.encoders = args.encoders.replace("fpng", "")
    encoders = [name for name in args.encoders.split(",") if name]
    config = PairsConfig(width=args.size, height=args.size)
    tmp = tempfile.mkdtemp(prefix="bench-formats-")
    timed_make(os.path.join(tmp, "pairs.h5"), config, 16, 1)  # compile outside the timings
    began = time.perf_counter()
    tables = []
    if args.sections & {"make", "export"}:
        tables.append(report.markdown_table(
            ["what", "pairs/s", "vs encode only", "vs make + encode", "CPU ms/pair"],
            format_rows(format_rounds(args, config, tmp, encoders), encoders, args.png_level)))
    if "dask" in args.sections:
        tables.append(report.markdown_table(["what", "pairs/s", "vs local pool"], dask_rows(args, config, tmp)))
    if "png" in args.sections:
        tables.append(report.markdown_table(["PNG encoding, one thread", "ms/image", "kB/image"],
                                            png_rows(args, config, tmp)))
    if "merge" in args.sections:
        tables.append(report.markdown_table(["what", "seconds", "ratio"], merge_rows(tmp, args.rounds)))
    shutil.rmtree(tmp, ignore_errors=True)
    print(*tables, sep="\n\n")
    report.append_results(
        f"Output formats, export, Dask, virtual merge ({args.n} pairs {args.size}x{args.size}, {args.workers} workers, "
        f"PNG level {args.png_level}; {', '.join(sorted(args.sections))})", "\n\n".join(tables),
        ("numpy", "opencv-python-headless", "fpng", "h5py", "lmdb", "webdataset", "distributed"),
        footnote(args, time.perf_counter() - began))


def footnote(args, seconds: float) -> str:
    notes = [f"Medians of {args.rounds} interleaved rounds, {seconds:.0f} s in all."]
    if args.sections & {"make", "export", "dask"}:
        notes.append("Rates: whole runs (process start-up, assembly, rename), durable=False (no fsync: the "
                     "encode-only ceiling writes nothing), the source in the page cache (encode only read it "
                     "just before); the rows 'source on disk, durable' run as a user's export usually does: the "
                     "source dropped from the page cache first, every file synced to disk before the output is "
                     "renamed into place. CPU ms/pair: "
                     "encode only, the encoding loops' CPU time; export, every process of the run (start-up, "
                     "reading, staging, assembly).")
    if "png" in args.sections:
        notes.append(f"PNG encoding: CPU time of one thread over the {2 * args.n} blurred and sharp images of "
                     f"{args.n} pairs made with the default settings.")
    notes.append("The machine was shared with other jobs: compare the ratios, which come from this run.")
    return " ".join(notes)


if __name__ == "__main__":
    main()
