"""Sinks for clips (``make --clips``): the folders, LMDB and WebDataset layouts of a clips dataset.

They are the pair sinks of ``blurgen.runs.format_sinks`` (blocks staged as tars in the workers,
committed by rename, built into the output in the driver: the same crash safety, ``--resume``
and determinism) with a clip encoded as the members of one sample ``KEY`` (the clip's index, 8
digits):

* folders and LMDB (per frame ``F``, 8 digits): ``KEY.blur.F.png``, ``KEY.sharp.F.png``,
  ``KEY.kernel.F.npy`` (float32 (k, k)), ``KEY.motion.F.npy`` (float32 (K, 6): rotation then
  translation, as a pair's), ``KEY.frames.npz`` and ``KEY.json``. The folders sink writes them as
  GoPro's layout, ``OUT/KEY/blur/F.png``, ``OUT/KEY/sharp/F.png``, ``OUT/KEY/kernel/F.npy``,
  ``OUT/KEY/motion/F.npy``, ``OUT/KEY/frames.npz``; the LMDB sink puts the images in
  ``OUT/blur.lmdb`` and ``OUT/sharp.lmdb`` under the keys ``KEY/F`` (BasicSR's video LMDB keys,
  ``meta_info.txt`` lines ``KEY/F.png (H,W,3) LEVEL``) and the rest in the folders layout;
* WebDataset (one sample per clip): ``KEY.blur.npy``, ``KEY.sharp.npy`` (uint8 (T, H, W, 3)),
  ``KEY.kernel.npy`` (float32 (T, k, k)), ``KEY.motion.npy`` (float32 (T, K, 6)),
  ``KEY.frames.npz``, ``KEY.json``: ``webdataset``'s default decoders return each as an array
  (the .npz as a dict), a whole clip ready to batch, with no per-frame PNG decoding.

``frames.npz`` holds the per-frame values of the clips file's ``/motion`` group besides the poses
(``frame_rotation``, ``frame_translation`` (T, 3), ``window_margin_px`` (T,), ...), under the same
names; ``KEY.json`` (and ``params.csv``) the per-clip ``/params``.
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from blurgen.runs.format_sinks import FoldersSink, LmdbSink, WebDatasetSink
from blurgen.runs.samples import encode_png, motion_array, npy_bytes, params_json, sample_name

FRAMES_NAME = "frames.npz"
#: The per-frame poses, stored as ``motion`` members; the other ``/motion`` arrays go to ``frames.npz``.
POSES = ("rotation", "translation")
#: Clips made at once inside a large block (a clip holds T frames).
CLIP_SUB_BLOCK = 4


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An uncompressed ``.npz`` of ``arrays`` with fixed member dates (the same arrays give the same
    bytes; ``np.savez`` stamps the time), read by ``np.load``.

    >>> data = npz_bytes({"a": np.arange(3, dtype=np.int32)})
    >>> np.load(io.BytesIO(data))["a"].tolist()
    [0, 1, 2]
    """
    handle = io.BytesIO()
    with zipfile.ZipFile(handle, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            archive.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), npy_bytes(arrays[name]))
    return handle.getvalue()


def _frame_values(block: dict, i: int) -> bytes:
    return npz_bytes({name: values[i] for name, values in block.get("motion", {}).items() if name not in POSES})


def _poses(block: dict, i: int) -> np.ndarray | None:
    """Clip ``i``'s poses, float32 (T, K, 6), or None without camera motion."""
    motion = block.get("motion") or {}
    return motion_array(motion, i) if all(name in motion for name in POSES) else None


def clip_frame_members(block: dict, i: int, index: int, level: int, encoder: str = "opencv") -> list[tuple[str, bytes]]:
    """Clip ``i`` of ``block`` (clip ``index``) as per-frame members (folders and LMDB layouts)."""
    key = sample_name(index)
    poses = _poses(block, i)
    members = []
    for j in range(int(block["blurred"].shape[1])):
        frame = sample_name(j)
        members += [(f"{key}.blur.{frame}.png", encode_png(block["blurred"][i, j], level, encoder)),
                    (f"{key}.sharp.{frame}.png", encode_png(block["sharp"][i, j], level, encoder)),
                    (f"{key}.kernel.{frame}.npy", npy_bytes(np.asarray(block["kernel"][i, j], np.float32)))]
        if poses is not None:
            members.append((f"{key}.motion.{frame}.npy", npy_bytes(poses[j])))
    return [*members, (f"{key}.{FRAMES_NAME}", _frame_values(block, i)), (f"{key}.json", params_json(block, i))]


def clip_stack_members(block: dict, i: int, index: int, level: int, encoder: str = "opencv") -> list[tuple[str, bytes]]:
    """Clip ``i`` of ``block`` (clip ``index``) as one WebDataset sample of frame stacks."""
    key = sample_name(index)
    members = [(f"{key}.blur.npy", npy_bytes(block["blurred"][i])), (f"{key}.sharp.npy", npy_bytes(block["sharp"][i])),
               (f"{key}.kernel.npy", npy_bytes(np.asarray(block["kernel"][i], np.float32)))]
    poses = _poses(block, i)
    if poses is not None:
        members.append((f"{key}.motion.npy", npy_bytes(poses)))
    return [*members, (f"{key}.{FRAMES_NAME}", _frame_values(block, i)), (f"{key}.json", params_json(block, i))]


class ClipFolderLayout:
    """What the clip folders and LMDB sinks share: per-frame members, stored under ``OUT/KEY/``."""

    members = staticmethod(clip_frame_members)
    sub_block = CLIP_SUB_BLOCK

    def member_path(self, kind: str, key: str) -> str:
        """``KEY/blur/F.png``, ``KEY/kernel/F.npy``, ... and ``KEY/frames.npz``."""
        if kind == FRAMES_NAME:
            return os.path.join(key, FRAMES_NAME)
        folder, frame, ext = kind.split(".")
        return os.path.join(key, folder, f"{frame}.{ext}")


class ClipFoldersSink(ClipFolderLayout, FoldersSink):
    """Clips as GoPro's folders: ``OUT/KEY/blur/F.png``, ``OUT/KEY/sharp/F.png``, side files
    beside them, ``OUT/params.csv`` (one row per clip) and ``OUT/blurgen.json``."""


class ClipLmdbSink(ClipFolderLayout, LmdbSink):
    """Clip frames in BasicSR's LMDB layout, keys ``KEY/F`` (as its video datasets read them)."""

    output_format = "lmdb"

    def lmdb_entry(self, kind: str, key: str) -> tuple[str, str] | None:
        folder, _, rest = kind.partition(".")
        frame, _, ext = rest.partition(".")
        image_kind = f"{folder}.{ext}"
        return (image_kind, f"{key}/{frame}") if image_kind in self.lmdb_kinds and frame else None


class ClipWebDatasetSink(WebDatasetSink):
    """WebDataset tars of clips, one sample per clip (frame stacks as ``.npy``: no PNG, so the
    PNG level and encoder play no part)."""

    members = staticmethod(clip_stack_members)
    sub_block = CLIP_SUB_BLOCK
    #: ``make`` refuses --png-level and --png-encoder for it (its manifest keeps the defaults).
    stores_png = False


CLIP_SINKS = {"folders": ClipFoldersSink, "lmdb": ClipLmdbSink, "webdataset": ClipWebDatasetSink}
