"""Readers of the folders, LMDB and WebDataset outputs written the way their real clients read
them (BasicSR's LMDB backend, the ``webdataset`` package), returning the arrays of
``pairs_compare.arrays`` so every format is compared with the HDF5 of the same seed."""

from __future__ import annotations

import glob
import json
import os

import cv2
import numpy as np

from blurgen.runs.outputs import read_params_csv


def _rgb(data: bytes) -> np.ndarray:
    """As BasicSR's ``imfrombytes`` (cv2.imdecode, BGR) then its BGR -> RGB."""
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[..., ::-1]


def _params(out: str) -> dict[str, np.ndarray]:
    with open(os.path.join(out, "blurgen.json"), encoding="utf-8") as handle:
        meta = json.load(handle)
    params = read_params_csv(os.path.join(out, "params.csv"), meta["param_dtypes"])
    assert params.pop("index").tolist() == list(range(meta["sample_start"], meta["sample_stop"]))
    return {f"params/{name}": values for name, values in params.items()}


def _kernels(out: str, names: list[str]) -> np.ndarray:
    """The kernels of samples ``names``: their rows of ``OUT/kernel.npy`` (row 0 is the output's
    first sample)."""
    with open(os.path.join(out, "blurgen.json"), encoding="utf-8") as handle:
        first = json.load(handle)["sample_start"]
    kernels = np.load(os.path.join(out, "kernel.npy"), mmap_mode="r")
    assert kernels.shape[0] == len(names)
    return np.stack([kernels[int(name) - first] for name in names])


def read_folders(out: str) -> dict[str, np.ndarray]:
    names = sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(out, "blur")))
    assert names == sorted(os.path.splitext(n)[0] for n in os.listdir(os.path.join(out, "sharp")))
    images = {kind: np.stack([_rgb(open(os.path.join(out, folder, f"{name}.png"), "rb").read()) for name in names])
              for kind, folder in (("blurred", "blur"), ("sharp", "sharp"))}
    return {**images, "kernel": _kernels(out, names), **_params(out)}


def lmdb_images(out: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """``{"blurred": (n, H, W, 3), "sharp": ...}`` and the keys of ``OUT/blur.lmdb`` and
    ``OUT/sharp.lmdb`` in ``meta_info.txt`` order (the same in both), as BasicSR reads them."""
    import lmdb

    images, keys = {}, {}
    for kind, folder in (("blurred", "blur.lmdb"), ("sharp", "sharp.lmdb")):
        root = os.path.join(out, folder)
        with open(os.path.join(root, "meta_info.txt")) as fin:
            keys[kind] = [line.split(".")[0] for line in fin]
        env = lmdb.open(root, readonly=True, lock=False, readahead=False, meminit=False)
        with env.begin(write=False) as txn:
            images[kind] = np.stack([_rgb(txn.get(key.encode("ascii"))) for key in keys[kind]])
        env.close()
    assert keys["blurred"] == keys["sharp"]
    return images, keys["blurred"]


def read_lmdb_as_basicsr(out: str) -> dict[str, np.ndarray]:
    """``paired_paths_from_lmdb`` (keys: meta_info.txt lines up to the first dot, which must be
    equal in both) then ``LmdbBackend.get`` (``txn.get(key.encode('ascii'))``)."""
    images, keys = lmdb_images(out)
    return {**images, "kernel": _kernels(out, keys), **_params(out)}


def read_webdataset(prefix: str) -> dict[str, np.ndarray]:
    """Every sample of ``PREFIX-*.tar`` through ``webdataset.WebDataset(...).decode("rgb8")``."""
    import webdataset as wds

    urls = sorted(glob.glob(glob.escape(prefix) + "-[0-9]*.tar"))
    with open(prefix + ".json", encoding="utf-8") as handle:
        dtypes = json.load(handle)["param_dtypes"]
    samples = list(wds.WebDataset(urls, shardshuffle=False, empty_check=False).decode("rgb8"))
    assert [s["__key__"] for s in samples] == sorted(s["__key__"] for s in samples)
    out = {"blurred": np.stack([s["blur.png"] for s in samples]),
           "sharp": np.stack([s["sharp.png"] for s in samples]),
           "kernel": np.stack([s["kernel.npy"] for s in samples])}
    for name, dtype in dtypes.items():
        out[f"params/{name}"] = np.array([s["json"][name] for s in samples], dtype=dtype)
    return out


READERS = {"folders": read_folders, "lmdb": read_lmdb_as_basicsr, "webdataset": read_webdataset}


def assert_same_as_hdf5(reference: str, got: dict[str, np.ndarray]) -> None:
    from pairs_compare import arrays

    want = arrays(reference)
    assert sorted(want) == sorted(got)
    for name in want:
        assert want[name].dtype == got[name].dtype, name
        np.testing.assert_array_equal(want[name], got[name], err_msg=name)
