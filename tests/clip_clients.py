"""Readers of the clip folders, LMDB and WebDataset outputs as their clients read them (OpenCV for
PNG files, LMDB keys ``CLIP/FRAME`` as BasicSR's video datasets, the ``webdataset`` package),
returning the arrays of ``clip_arrays`` so each is compared with the clips file of the same seed."""

from __future__ import annotations

import glob
import json
import os

import cv2
import h5py
import numpy as np

from blurgen.runs.outputs import read_params_csv


def clip_arrays(path) -> dict[str, np.ndarray]:
    """Every array of a clips file (schema 3): images, kernels, ``params/*``, ``motion/*``."""
    with h5py.File(path, "r") as h5:
        out = {name: h5[name][...] for name in ("blurred", "sharp", "kernel")}
        out.update({f"params/{name}": ds[...] for name, ds in h5["params"].items()})
        out.update({f"motion/{name}": ds[...] for name, ds in h5["motion"].items()})
    return out


def _rgb(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def _read(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def _side(out: str, clips: list[str], frames: list[str]) -> dict[str, np.ndarray]:
    """Kernels, poses, frames.npz and params.csv of the folders and LMDB layouts."""
    got = {"kernel": np.stack([[np.load(os.path.join(out, c, "kernel", f + ".npy")) for f in frames] for c in clips])}
    poses = np.stack([[np.load(os.path.join(out, c, "motion", f + ".npy")) for f in frames] for c in clips])
    got["motion/rotation"], got["motion/translation"] = poses[..., :3], poses[..., 3:]
    values = [dict(np.load(os.path.join(out, c, "frames.npz"))) for c in clips]
    got.update({f"motion/{name}": np.stack([v[name] for v in values]) for name in values[0]})
    with open(os.path.join(out, "blurgen.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    params = read_params_csv(os.path.join(out, "params.csv"), meta["param_dtypes"])
    assert params.pop("index").tolist() == [int(c) for c in clips]
    return {**got, **{f"params/{name}": values for name, values in params.items()}}


def read_clip_folders(out: str) -> dict[str, np.ndarray]:
    """``OUT/CLIP/blur/FRAME.png`` and ``OUT/CLIP/sharp/FRAME.png`` (GoPro's layout) read by OpenCV."""
    clips = sorted(n for n in os.listdir(out) if os.path.isdir(os.path.join(out, n)))
    frames = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(out, clips[0], "blur")))
    images = {kind: np.stack([[_rgb(_read(os.path.join(out, c, folder, f + ".png"))) for f in frames] for c in clips])
              for kind, folder in (("blurred", "blur"), ("sharp", "sharp"))}
    return {**images, **_side(out, clips, frames)}


def read_clip_lmdb(out: str) -> dict[str, np.ndarray]:
    """Keys from each ``meta_info.txt`` (``CLIP/FRAME.png (H,W,3) LEVEL``), images by ``txn.get``."""
    from format_clients import lmdb_images

    flat, keys = lmdb_images(out)
    clips = sorted({key.split("/")[0] for key in keys})
    images = {kind: stack.reshape(len(clips), -1, *stack.shape[1:]) for kind, stack in flat.items()}
    frames = sorted({key.split("/")[1] for key in keys})
    return {**images, **_side(out, clips, frames)}


def read_clip_webdataset(prefix: str) -> dict[str, np.ndarray]:
    """Every clip of ``PREFIX-*.tar`` through ``webdataset.WebDataset(...).decode()``."""
    import webdataset as wds

    urls = sorted(glob.glob(glob.escape(prefix) + "-[0-9]*.tar"))
    with open(prefix + ".json", encoding="utf-8") as handle:
        dtypes = json.load(handle)["param_dtypes"]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode())
    assert [s["__key__"] for s in samples] == sorted(s["__key__"] for s in samples)
    out = {"blurred": np.stack([s["blur.npy"] for s in samples]), "sharp": np.stack([s["sharp.npy"] for s in samples]),
           "kernel": np.stack([s["kernel.npy"] for s in samples])}
    poses = np.stack([s["motion.npy"] for s in samples])
    out["motion/rotation"], out["motion/translation"] = poses[..., :3], poses[..., 3:]
    out.update({f"motion/{name}": np.stack([s["frames.npz"][name] for s in samples]) for name in samples[0]["frames.npz"]})
    for name, dtype in dtypes.items():
        out[f"params/{name}"] = np.array([s["json"][name] for s in samples], dtype=dtype)
    return out


CLIP_READERS = {"folders": read_clip_folders, "lmdb": read_clip_lmdb, "webdataset": read_clip_webdataset}


def assert_same_as_clips_file(reference, got: dict[str, np.ndarray]) -> None:
    want = clip_arrays(reference)
    assert sorted(want) == sorted(got)
    for name in want:
        assert want[name].dtype == got[name].dtype, name
        np.testing.assert_array_equal(want[name], got[name], err_msg=name)
