"""DeblurGAN training checkpoints: atomic writes, safe loads, RNG state capture.

A checkpoint is a plain dict saved with ``torch.save`` that loads with
``torch.load(weights_only=True)``: only tensors, dicts, lists, tuples, str, int, float, bool and
None (RNG states are stored as tensors)::

    {"format": "blurgen-deblurgan", "version": 1,
     "generator": state_dict, "generator_config": {"name": "resnet", "width": ..., ...},
     "critic": state_dict, "critic_config": {...}, "opt_g": ..., "opt_d": ..., "scheduler": {...},
     "rng": {"torch_cpu": uint8 tensor, "torch_cuda": [uint8 tensors], "numpy": {...},
             "python": {...}, "per_rank": [{"torch_cpu": ..., "torch_cuda": [...]}, ...]},
     "train_config": {...}, "step": int, "epoch": int, "data_position": {...}}
"""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from blurgen.core.common import BlurgenError, atomic_file

FORMAT = "blurgen-deblurgan"
VERSION = 1
# What every checkpoint holds; training's --resume also needs "step" (``TRAINING_KEYS``).
MODEL_KEYS = ("generator", "generator_config")
TRAINING_KEYS = (*MODEL_KEYS, "step")


class CheckpointError(BlurgenError):
    """A checkpoint that cannot be used: missing, unreadable, foreign, of another version, or
    (from ``inference.load_generator``) whose weights do not fit its generator config. The
    message is one line naming the file."""


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """Write ``payload`` to ``path`` atomically and durably (``blurgen.core.common.atomic_file``: a crash,
    a full disk or Ctrl-C mid-write leaves the previous file intact; the run folder removes what a
    kill leaves)."""
    with atomic_file(path) as handle:
        torch.save({"format": FORMAT, "version": VERSION, **payload}, handle)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    required: tuple[str, ...] = MODEL_KEYS) -> dict[str, Any]:
    """Load and check a checkpoint written by ``save_checkpoint`` (``torch.load(weights_only=True)``:
    tensors and plain containers only, no code runs). ``required`` names the keys the caller
    needs (``TRAINING_KEYS`` to resume training); ``generator`` and ``generator_config`` must be
    dicts.

    Raises ``CheckpointError`` with a one-line message for a missing, truncated, foreign,
    newer-version or incomplete file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # truncated zip, pickle of foreign objects, ...: many types, and torch's
        # messages are codes ("(101)") or advice to load unsafely: neither is relayed
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint (truncated, damaged, another kind of "
                              "file, or holding objects other than tensors); give a checkpoint blurgen train wrote") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a blurgen DeblurGAN checkpoint (no format={FORMAT!r})")
    version = payload.get("version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: invalid checkpoint version {version!r}")
    if version > VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than this blurgen "
                              f"reads ({VERSION}); upgrade blurgen")
    missing = [k for k in required if k not in payload]
    if missing:
        raise CheckpointError(f"{path}: incomplete checkpoint (missing {', '.join(missing)})")
    for key in MODEL_KEYS:
        if key in payload and not isinstance(payload[key], dict):
            raise CheckpointError(f"{path}: checkpoint has no {key!r} dict")
    bad = [name for name, t in payload.get("generator", {}).items()
           if torch.is_tensor(t) and t.is_floating_point() and not bool(torch.isfinite(t).all())]
    if bad:
        raise CheckpointError(f"{path}: generator weight {bad[0]} holds NaN or infinite values ({len(bad)} tensor(s)); "
                              "the training diverged: use an earlier checkpoint")
    return payload


def capture_torch_rng() -> dict[str, Any]:
    """This process's torch RNG states: CPU and every visible CUDA device, as uint8 tensors."""
    state = {"torch_cpu": torch.get_rng_state()}
    state["torch_cuda"] = list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else []
    return state


def capture_host_rng() -> dict[str, Any]:
    """numpy's and Python's global RNG states, converted to tensors and plain numbers."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(internal, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def restore_rng(rng: dict[str, Any], torch_state: dict[str, Any] | None = None) -> None:
    """Restore states captured by ``capture_host_rng`` (``rng``) and ``capture_torch_rng``
    (``torch_state``; default the one stored in ``rng``)."""
    torch_state = torch_state or rng
    torch.set_rng_state(torch_state["torch_cpu"])
    cuda_states = torch_state.get("torch_cuda") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)
    np_state = rng["numpy"]
    np.random.set_state((np_state["name"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    py = rng["python"]
    random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss_next"]))
