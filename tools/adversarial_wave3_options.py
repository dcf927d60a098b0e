"""Adversarial option values for the camera pipeline, clips, Dask executor and inspect surfaces."""

from __future__ import annotations

import os

from adversarial_wave3 import SMALL, blurgen, failed_well, succeeded

MAKE = ["make", "--n", "4", "--workers", "1", *SMALL]
CAM = [*MAKE, "--pipeline", "camera"]
CLIP = ["make", "--n", "2", "--workers", "1", "--size", "32", "--motion", "camera3d", "--clips", "3",
        "--frame-size", "96x96", "--clip-margin", "16", "--camera-steps", "16"]

#: (case, argv after the command, expected exit code: 0 works, 2 usage error, 1 failure).
CAMERA = [(f"--{opt} {val}", [*CAM, f"--{opt}", val], rc) for opt, val, rc in (
    ("shot-noise", "0,0", 2), ("shot-noise", "1,1", 2), ("shot-noise", "1e-9,1e-9", 0), ("shot-noise", "nan,1", 2),
    ("shot-noise", "inf,inf", 2), ("shot-noise", "-1,1", 2), ("shot-noise", "0.01,0.001", 2),
    ("bit-depth", "7", 2), ("bit-depth", "17", 2), ("bit-depth", "8", 0), ("bit-depth", "16", 0),
    ("bit-depth", "nan", 2), ("light-boost", "1,1", 0), ("light-boost", "1000,1000", 0), ("light-boost", "0.5,2", 2),
    ("light-boost", "1,1e9", 2), ("light-boost", "nan,2", 2), ("light-boost", "inf,inf", 2),
    ("light-threshold", "0.4,1", 2), ("light-threshold", "0.5,0.5", 0), ("light-threshold", "nan,1", 2),
    ("bayer", "XXXX", 2), ("bayer", "", 2), ("bayer", "rggb", 0), ("bayer", "RGGB,RGGB", 0), ("bayer", "RGGB,", 0))] + [  # "RGGB,": the empty item is ignored, as in every list option
    ("camera with --noise-a (srgb only)", [*CAM, "--noise-a", "0.001,0.002"], 2),
    ("camera with --noise off", [*CAM, "--noise", "off"], 0),
    ("camera with --gamma 2.2", [*CAM, "--gamma", "2.2"], 0),
    ("srgb with --shot-noise", [*MAKE, "--shot-noise", "0.001,0.002"], 2),
    ("srgb with --bayer", [*MAKE, "--bayer", "RGGB"], 2),
    ("srgb with --bit-depth", [*MAKE, "--bit-depth", "10"], 2),
    ("camera + lmdb works", [*CAM, "--format", "lmdb"], 0),
]

CLIPS = [(f"--{opt} {val}", [*CLIP, f"--{opt}", val], rc) for opt, val, rc in (
    ("clips", "0", 2), ("clips", "-1", 2), ("clips", "100000", 2), ("clips", "1", 0), ("fps", "0", 2),
    ("fps", "inf", 2), ("fps", "nan", 2), ("fps", "-30", 2), ("fps", "1e-300", 2), ("shutter-angle", "0", 2),
    ("shutter-angle", "361", 2), ("shutter-angle", "nan", 2), ("shutter-angle", "360", 0),
    ("readout-s", "-1", 2), ("readout-s", "2", 2), ("readout-s", "nan", 2), ("readout-s", "1", 0),
    ("clip-margin", "-1", 2), ("clip-margin", "5000", 2))] + [
    ("--clips with shake2d", ["make", "--n", "2", "--size", "32", "--clips", "3", "--workers", "1"], 2),
    ("--clips with --format lmdb", [*CLIP, "--format", "lmdb"], 2),
    ("--clips with --executor dask", [*CLIP, "--executor", "dask"], 2),
    ("--clips with --pipeline camera", [*CLIP, "--pipeline", "camera"], 2),
    ("--fps without --clips", [*MAKE, "--fps", "24"], 2),
]

DASK = [
    ("unreachable address", [*MAKE, "--executor", "dask:tcp://127.0.0.1:1"], 1),
    ("unresolvable host", [*MAKE, "--executor", "dask:tcp://no-such-host.invalid:8786"], 1),
    ("malformed address", [*MAKE, "--executor", "dask:::::"], 2),
    ("non-routable address", [*MAKE, "--executor", "dask:tcp://10.255.255.1:8786"], 1),
    ("unknown executor", [*MAKE, "--executor", "ray"], 2),
    ("empty executor", [*MAKE, "--executor", ""], 2),
    ("dask: with nothing after", [*MAKE, "--executor", "dask:"], 0),
    ("local dask cluster", [*MAKE, "--executor", "dask", "--workers", "2"], 0),
]


def _run_table(p, surface: str, table, workdir: str) -> None:
    os.makedirs(workdir, exist_ok=True)
    for i, (name, argv, rc) in enumerate(table):
        out = os.path.join(workdir, f"case{i}")
        ext = ".h5" if "--format" not in argv else ""
        r = blurgen(*argv, "--out", out + ext, timeout=120)
        ok, why = succeeded(r) if rc == 0 else failed_well(r, rc)
        p.record(surface, f"{name} (want exit {rc})", ok and r.seconds < 110, why or f"{r.seconds:.0f} s")


def camera(p) -> None:
    _run_table(p, "camera", CAMERA, p.path("camera"))


def clips(p) -> None:
    _run_table(p, "clips", CLIPS, p.path("clips"))


def dask(p) -> None:
    _run_table(p, "dask", DASK, p.path("dask"))
    r = blurgen(*MAKE, "--executor", "dask", "--out", p.path("dask", "nodask.h5"), env={"PYTHONPATH": _no_dask(p)})
    p.record("dask", "dask not installed: one line naming the install", *failed_well(r, 1, "install"))


def _no_dask(p) -> str:
    """A folder whose ``distributed`` package fails to import, put first on PYTHONPATH."""
    folder = p.path("dask", "nodask")
    os.makedirs(os.path.join(folder, "distributed"), exist_ok=True)
    with open(os.path.join(folder, "distributed", "__init__.py"), "w") as handle:
        handle.write("raise ImportError('No module named distributed')\n")
    return folder


def dask_interrupted(p) -> None:
    """Ctrl-C (and SIGKILL) during a run on a local Dask cluster, then --resume (local and Dask)."""
    import signal

    from adversarial_wave3 import interrupt, same_as
    from adversarial_wave3_formats import BIG, references

    _, big = references(p)
    for sig, name, executor in ((signal.SIGINT, "SIGINT", "local"), (signal.SIGKILL, "SIGKILL", "dask")):
        out = p.path("dask", f"kill-{name}.h5")
        args = ["make", "--n", "240", "--seed", "5", "--out", out, "--workers", "2", *BIG]
        code = interrupt([*args, "--executor", "dask"], 0.5, sig, blocks_of=out)
        r = blurgen(*args, "--resume", "--executor", executor)
        ok, why = succeeded(r)
        p.record("dask", f"{name} during a Dask run (exit {code}), --resume on {executor}",
                 ok and same_as(big, "hdf5", out)[0], why)


def transforms(p) -> None:
    """``RandomCameraShake(pipeline="camera")`` and ``camera_shake`` on hostile tensors, in this
    process: a refusal must be one ``ValueError``/``TypeError`` line, a result finite and in range."""
    import numpy as np
    import torch

    from blurgen.transforms import RandomCameraShake, camera_shake

    def attempt(name, call, want_error):
        try:
            out = call()
        except (ValueError, TypeError) as exc:
            ok = want_error and "\n" not in str(exc)
            return p.record("transforms", name, ok, f"{type(exc).__name__}: {exc}"[:200])
        except Exception as exc:  # noqa: BLE001 -- any other exception is this case's finding
            return p.record("transforms", name, False, f"{type(exc).__name__}: {exc}"[:200])
        good = not out.numel() or (bool(torch.isfinite(out.float()).all()) and float(out.float().min()) >= 0)
        return p.record("transforms", name, (not want_error) and good, "no error" if want_error else "")

    cam = RandomCameraShake(p=1.0, seed=0, pipeline="camera", noise=True)
    rgb = torch.rand(2, 3, 24, 24)
    for name, x, bad in (("1 channel", torch.rand(2, 1, 24, 24), True), ("4 channels", torch.rand(2, 4, 24, 24), True),
                         ("float16", rgb.half(), False), ("bfloat16", rgb.bfloat16(), False),
                         ("uint8", (rgb * 255).to(torch.uint8), False), ("float64", rgb.double(), False),
                         ("CHW", rgb[0], False), ("NaN", rgb.clone().fill_(float("nan")), True),
                         ("values > 1", rgb * 2, True), ("empty batch", rgb[:0], False), ("int32", rgb.int(), True),
                         ("1x1 image", torch.rand(1, 3, 1, 1), False)):
        attempt(f"camera pipeline on {name}", lambda x=x: cam(x), bad)
    # cuda/mps tensors cannot be made without the device (torch refuses the .to() itself); meta can
    attempt("camera pipeline on a meta tensor", lambda: cam(rgb.to("meta")), True)
    for pipeline in ("raw", "", None, 3):
        attempt(f"pipeline={pipeline!r}", lambda q=pipeline: RandomCameraShake(pipeline=q), True)
    attempt("pipeline camera with gamma None", lambda: RandomCameraShake(pipeline="camera", gamma=None), True)
    delta = np.zeros((2, 5, 5), np.float32)
    delta[:, 2, 2] = 1
    for name, k in (("NaN kernels", delta * np.nan), ("zero kernels", delta * 0), ("negative kernels", -delta),
                    ("complex kernels", delta.astype(complex)), ("object kernels", delta.astype(object)),
                    ("even kernels", np.ones((2, 4, 4))), ("kernel count != batch", delta[:1])):
        attempt(f"camera_shake with {name}", lambda k=k: camera_shake(rgb, k), True)
