"""Downstream benchmark: train the same small restorer on each blur recipe, score it on real shake.

    python benchmarks/bench_downstream.py --kohler DIR [--seeds 0,1,2] [--steps 800] [--cache DIR]
    python benchmarks/bench_downstream.py --kohler DIR --steps 250 --pairs 96 --no-append   # reduced

A recipe is a string of ``blurgen make`` options. For each (recipe, seed): ``blurgen make`` its
pairs (dead leaves, same size, kernel size and seed for every recipe, so the sharp crops and the
gain/noise draws are the same and only the blur differs), train ``downstream_net.TinyUNet`` from
the seed's initialisation on the seed's crop plan for a fixed number of steps, and score it on the
Köhler et al. 2012 shots (``downstream_data``: global shift and gain/offset alignment before
PSNR/SSIM). Results are cached per (recipe, seed) as JSON in ``--cache``, so an interrupted run
resumes. Scenes 1-2 are the tuning split (recipes and option values are chosen on them), scenes
3-4 the held-out report. Paired differences are per seed against ``--baseline``; a difference
whose size is below the seed spread (the larger sd over seeds of the two recipes) is a tie.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import downstream_data as data  # noqa: E402
from report import append_results, markdown_table  # noqa: E402

#: name -> ``blurgen make`` options ({bank:NAME}: a kernel bank made by downstream_data).
#: ``shake2d`` is DeblurGAN's recipe and ``camera3d`` the fitted camera's exposures (make's defaults
#: until the table chose the ``shake2d-len-1-32`` and ``camera3d-len-1-16`` rows); the same arrays
#: as the option strings without ``--blur-length-px off`` made before.
RECIPES = {
    "shake2d": "--blur-length-px off",
    "camera3d": "--motion camera3d --blur-length-px off",
    "lines": "--kernels {bank:lines}",
    "deblurgan": "--kernels {bank:deblurgan}",
    "shake2d-len-1-16": "--blur-length-px 1,16",
    "shake2d-len-1-32": "--blur-length-px 1,32",
    "camera3d-len-1-16": "--motion camera3d --exposure-s 0.0005,1 --blur-length-px 1,16",
    "camera3d-len-1-32": "--motion camera3d --exposure-s 0.0005,1 --blur-length-px 1,32",
    "camera3d-len-1-32-raw": "--motion camera3d --exposure-s 0.0005,1 --blur-length-px 1,32 --pipeline camera",
}
TUNE_SCENES, TEST_SCENES = (1, 2), (3, 4)


def run_key(recipe: str, seed: int, args: argparse.Namespace) -> str:
    settings = [recipe, seed, args.steps, args.pairs, args.side, args.crop, args.batch, args.width, args.trajectories,
                args.base, args.scale]
    return hashlib.sha1(json.dumps(settings).encode()).hexdigest()[:12]


def score_all(restore, shots: list, scale: int) -> dict[str, list[float]]:
    return {name: list(data.aligned_score(restore(blurred), sharp, scale)) for name, blurred, sharp in shots}


def run_one(name: str, seed: int, args: argparse.Namespace, shots: list) -> dict:
    """Train and score one (recipe, seed), or read its cached result."""
    import downstream_net as net

    recipe = RECIPES[name]
    key = run_key(recipe, seed, args)
    path = os.path.join(args.cache, f"{name}_s{seed}_{key}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    begin = time.time()
    pairs = data.make_pairs(f"{args.base} {recipe}", os.path.join(args.cache, f"pairs_{name}_s{seed}_{key}.h5"),
                            args.pairs, args.side, seed, args.cache)
    model = net.train(pairs["blurred"], pairs["sharp"], seed, args.steps, args.batch, args.crop, args.width)
    result = {"recipe": name, "options": recipe, "seed": seed, "shots": score_all(lambda b: net.restore(model, b), shots, args.scale),
              "seconds": round(time.time() - begin, 1)}
    with open(path + ".tmp", "w") as f:
        json.dump(result, f)
    os.replace(path + ".tmp", path)
    print(f"{name} seed {seed}: {time.time() - begin:.0f} s", flush=True)
    return result


def split_means(result: dict) -> tuple[dict, dict]:
    """Per split (tune, test): mean PSNR and SSIM over the split's shots."""
    out = []
    for scenes in (TUNE_SCENES, TEST_SCENES):
        values = np.array([v for k, v in result["shots"].items() if int(k.split("_")[0]) in scenes])
        out.append({"psnr": float(values[:, 0].mean()), "ssim": float(values[:, 1].mean())})
    return out[0], out[1]


def summarise(results: dict[str, list[dict]], baseline: str) -> list[list[str]]:
    """Table rows: recipe, tune PSNR, held-out PSNR and SSIM (mean +- sd over seeds), paired
    held-out PSNR difference to the baseline (mean +- sd over seeds) and the verdict."""
    per = {name: [split_means(r) for r in runs] for name, runs in results.items()}
    base = np.array([test["psnr"] for _, test in per[baseline]])
    rows = []
    for name, splits in per.items():
        tune = np.array([t["psnr"] for t, _ in splits])
        test = np.array([t["psnr"] for _, t in splits])
        ssim = np.array([t["ssim"] for _, t in splits])
        row = [name, f"`{RECIPES[name]}`" if name in RECIPES else "—", f"{tune.mean():.2f} ± {tune.std(ddof=1):.2f}",
               f"{test.mean():.2f} ± {test.std(ddof=1):.2f}", f"{ssim.mean():.4f} ± {ssim.std(ddof=1):.4f}"]
        if name == baseline or name not in RECIPES or len(test) != len(base):
            rows.append(row + ["(baseline)" if name == baseline else "", ""])
            continue
        diff = test - base
        spread = max(test.std(ddof=1), base.std(ddof=1))
        verdict = "tie" if abs(diff.mean()) <= spread else ("better" if diff.mean() > 0 else "worse")
        rows.append(row + [f"{diff.mean():+.2f} ± {diff.std(ddof=1):.2f}", verdict])
    return rows


def blurred_row(shots: list, seeds: int, scale: int) -> list[dict]:
    """The identity restorer (what TinyUNet is at initialisation), once per seed for the table."""
    result = {"shots": score_all(lambda b: b, shots, scale)}
    return [result] * seeds


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kohler", required=True, help="folder with Blurry{1-4}_{1-12}.jpg and GroundTruth{1-4}.jpg")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="comma-separated recipe names")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--baseline", default="shake2d")
    parser.add_argument("--steps", type=int, default=800, help="training steps per run")
    parser.add_argument("--pairs", type=int, default=256, help="training pairs per run")
    parser.add_argument("--side", type=int, default=96, help="side of the training pairs, px")
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--trajectories", default=",".join(str(t) for t in range(1, 13)),
                        help="Köhler trajectories (1-12) scored per scene")
    parser.add_argument("--scale", type=int, default=1, choices=sorted(data.GEOMETRY),
                        help="downscale the test images this many times (area average) before restoring")
    parser.add_argument("--base", default="",
                        help="blurgen make options added to every recipe ({skimage}: scikit-image's photos folder)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", default="downstream_cache")
    parser.add_argument("--no-append", action="store_true", help="do not append to benchmarks/RESULTS.md")
    return parser.parse_args(argv)


def main(argv=None) -> list[list[str]]:
    import torch

    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    os.makedirs(args.cache, exist_ok=True)
    names = [n.strip() for n in args.recipes.split(",") if n.strip()]
    unknown = sorted(set(names) - set(RECIPES))
    if unknown or args.baseline not in names:
        raise SystemExit(f"unknown recipes {unknown} or baseline {args.baseline!r} not among {names}")
    seeds = [int(s) for s in args.seeds.split(",")]
    trajectories = tuple(int(t) for t in args.trajectories.split(","))
    shots = data.load_kohler(args.kohler, TUNE_SCENES + TEST_SCENES, trajectories, args.scale)
    results = {name: [run_one(name, seed, args, shots) for seed in seeds] for name in names}
    results["blurred input (identity)"] = blurred_row(shots, len(seeds), args.scale)
    header = ["recipe", "make options", "PSNR scenes 1-2 (tune)", "PSNR scenes 3-4 (held out)",
              "SSIM scenes 3-4", f"ΔPSNR 3-4 vs {args.baseline} (paired)", "verdict"]
    table = markdown_table(header, summarise(results, args.baseline))
    print(table)
    rows = summarise(results, args.baseline)
    crop, _, max_shift = data.GEOMETRY[args.scale]
    notes = (f"{len(seeds)} seeds; Köhler trajectories {args.trajectories} of each scene; {args.steps} steps x batch "
             f"{args.batch} of {args.crop} px crops from {args.pairs} pairs of {args.side} px made with "
             f"`blurgen make {args.base or '(defaults)'} RECIPE`; TinyUNet width {args.width}. Köhler et al. 2012 "
             f"JPEG copies downscaled {args.scale}x, centre {crop} px, best shift within ±{max_shift} px and "
             "gain/offset before PSNR/SSIM, against one sharp frame per scene (an approximation of Köhler's "
             "protocol). ± is the sd over seeds; a difference no larger than the larger seed sd of the two recipes "
             "is a tie.")
    if not args.no_append:
        append_results("Downstream restoration on real camera shake (Köhler et al. 2012)", table,
                       ("blurgen", "torch", "numpy"), notes)
    return rows


if __name__ == "__main__":
    main()
