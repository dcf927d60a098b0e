"""Output formats, export, the Dask executor and virtual merge, as ratios measured in one run.

* encode-only: the same pairs' two PNGs (level --png-level) encoded by --workers processes, no
  other work: the ceiling for every PNG format;
* make --format F and export --format F (--workers processes): pairs/s and their share of it;
* Dask: make (hdf5) on a LocalCluster of --workers single-threaded workers vs the local pool;
* virtual merge of 2 shards x 5,000 pairs, small and 4x larger images (time independent of size).

Usage: python benchmarks/bench_formats.py [--n 400] [--size 256] [--workers 2] [--png-level 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
import report  # noqa: E402


def _encode(args):
    path, lo, hi, level = args
    from blurgen.runs.samples import encode_png
    from blurgen.runs.workers import limit_threads_here
    from blurgen.store.reader import PairsFile

    limit_threads_here()
    with PairsFile(path) as f:
        blurred, sharp, _ = f[lo:hi]
    began = time.perf_counter()
    for i in range(hi - lo):
        encode_png(blurred[i], level), encode_png(sharp[i], level)
    return time.perf_counter() - began


def encode_rate(path: str, n: int, workers: int, level: int) -> float:
    cuts = np.linspace(0, n, workers + 1).astype(int)
    with ProcessPoolExecutor(workers) as pool:
        seconds = max(pool.map(_encode, [(path, cuts[i], cuts[i + 1], level) for i in range(workers)]))
    return n / seconds


def run_make(out, config, n, workers, sink=None, executor=None):
    from blurgen.runs.dataset import make_dataset

    result = make_dataset(out, config, n, seed=0, workers=workers, sink=sink, executor=executor, durable=False)
    return n / result.seconds


def virtual_merge_seconds(folder: str, width: int) -> float:
    from fake_pairs import FakeConfig, FakeMaker

    from blurgen.runs.dataset import make_dataset
    from blurgen.store.merge import merge_files

    paths = [os.path.join(folder, f"v{width}-{i}.h5") for i in range(2)]
    for i, path in enumerate(paths):
        make_dataset(path, FakeConfig(width=width, height=width), 10000, seed=0, workers=1, shard=(i, 2),
                     maker=FakeMaker(), durable=False, block_size=1000)
    began = time.perf_counter()
    merge_files(paths, os.path.join(folder, f".m{width}.tmp"), os.path.join(folder, f"m{width}.h5"), "bench", virtual=True)
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--png-level", type=int, default=1)
    args = parser.parse_args()
    from blurgen.pairs.pipeline import PairsConfig
    from blurgen.runs.dask_executor import DaskExecutor
    from blurgen.runs.export import export_file
    from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink

    config = PairsConfig(width=args.size, height=args.size)
    tmp = tempfile.mkdtemp(prefix="bench-formats-")
    sinks = {"folders": lambda: FoldersSink(args.png_level), "lmdb": lambda: LmdbSink(args.png_level),
             "webdataset": lambda: WebDatasetSink(args.png_level, samples_per_shard=100)}
    h5 = os.path.join(tmp, "pairs.h5")
    run_make(h5, config, 16, 1)  # compile outside the timings
    os.unlink(h5)
    rows = []
    local = run_make(h5, config, args.n, args.workers)
    encode = encode_rate(h5, args.n, args.workers, args.png_level)
    rows.append(["encode only (both PNGs)", f"{encode:.1f}", "1.00"])
    rows.append(["make --format hdf5", f"{local:.1f}", f"{local / encode:.2f}"])
    for name, sink in sinks.items():
        rate = run_make(os.path.join(tmp, f"make-{name}"), config, args.n, args.workers, sink())
        rows.append([f"make --format {name}", f"{rate:.1f}", f"{rate / encode:.2f}"])
    for name, sink in sinks.items():
        result = export_file(h5, os.path.join(tmp, f"export-{name}"), sink(), workers=args.workers)
        rate = args.n / result.seconds
        rows.append([f"export --format {name}", f"{rate:.1f}", f"{rate / encode:.2f}"])
    dask_rate = run_make(os.path.join(tmp, "dask.h5"), config, args.n, args.workers,
                         executor=DaskExecutor(None, workers=args.workers))
    rows.append([f"make hdf5, Dask LocalCluster {args.workers} workers (incl. start-up)", f"{dask_rate:.1f}",
                 f"{dask_rate / local:.2f} of the local pool"])
    small, large = virtual_merge_seconds(tmp, 16), virtual_merge_seconds(tmp, 64)
    rows.append(["virtual merge 2 x 5,000 pairs 16x16 / 64x64 (s)", f"{small:.3f} / {large:.3f}",
                 f"{large / small:.2f}x for 16x the data"])
    table = report.markdown_table(["what", "pairs/s", "ratio"], rows)
    print(table)
    report.append_results(f"Output formats, export, Dask, virtual merge ({args.n} pairs {args.size}x{args.size}, "
                          f"{args.workers} workers, PNG level {args.png_level})", table,
                          ("numpy", "opencv-python-headless", "h5py", "lmdb", "webdataset", "distributed"),
                          "Ratios: PNG formats vs encoding the same PNGs alone with the same workers; Dask vs "
                          "the local pool (same machine, same run).")


if __name__ == "__main__":
    main()
