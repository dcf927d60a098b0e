"""Video training data: blurgen clips files (HDF5 schema 3) as torch tensors, with random
temporal and spatial crops.

``ClipsDataset(path, frames=5, crop=128)[i]`` is clip ``i``'s ``(blurred, sharp)``: float32
``(frames, 3, crop, crop)`` in ``[-1, 1]`` each, the same frames and pixels of both (aligned);
a DataLoader batch is ``(B, frames, 3, crop, crop)``, what video deblurring networks (EDVR,
BasicVSR++, RVRT, ...) take. The crops are drawn from ``(seed, epoch, i)`` alone, so a clip is the
same in whichever worker loads it; call ``set_epoch`` before each epoch. The file is opened lazily
in each process that reads it.

Example:
    >>> ds = ClipsDataset("clips.h5", frames=3, crop=64)   # doctest: +SKIP
    >>> blurred, sharp = ds[0]; blurred.shape               # doctest: +SKIP
    torch.Size([3, 3, 64, 64])
"""

from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from blurgen.deblur.data import DataError
from blurgen.store.reader import PairsFile


class ClipsDataset(Dataset):
    """Clips of a schema-3 file with a random window of ``frames`` consecutive frames and a
    random ``crop`` x ``crop`` square (``None``: whole frames); ``random=False`` takes the first
    frames and the centre crop (validation).

    Raises:
        PairsFileError: missing, foreign or damaged file. DataError: a pairs file (not clips),
            no clips, clips shorter than ``frames`` or frames smaller than ``crop``.
    """

    def __init__(self, path: str | os.PathLike, frames: int = 5, crop: int | None = 128, seed: int = 0,
                 random: bool = True) -> None:
        self.path, self.frames, self.crop, self.seed, self.random = os.fspath(path), int(frames), crop, int(seed), random
        with PairsFile(self.path) as probe:
            length, n = probe.frames, len(probe)
            height, width = probe.image_shape[1:3] if length else (0, 0)
        if length is None:
            raise DataError(f"{self.path}: a pairs file (schema 1/2), not clips; use blurgen.deblur.data.PairsDataset")
        if n == 0:
            raise DataError(f"{self.path}: no complete clips (n_written = 0)")
        if not 1 <= self.frames <= length:
            raise DataError(f"{self.path}: clips have {length} frames, fewer than frames={self.frames}")
        if crop is not None and (height < crop or width < crop):
            raise DataError(f"{self.path}: frames are {width}x{height}, smaller than the crop {crop}x{crop}")
        self.length, self.n, self.size = length, n, (height, width)
        self.epoch = 0
        self._file: PairsFile | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw the next epoch's crops (call in the main process before each epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}

    def _window(self, index: int) -> tuple[int, int, int]:
        """(first frame, top, left) of clip ``index``'s crop."""
        height, width = self.size
        crop_h, crop_w = (height, width) if self.crop is None else (self.crop, self.crop)
        if not self.random:
            return 0, (height - crop_h) // 2, (width - crop_w) // 2
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return (int(rng.integers(self.length - self.frames + 1)), int(rng.integers(height - crop_h + 1)),
                int(rng.integers(width - crop_w + 1)))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self._file is None:
            self._file = PairsFile(self.path)
        first, top, left = self._window(int(index))
        size = self.size if self.crop is None else (self.crop, self.crop)
        blurred, sharp, _ = self._file[int(index)]
        window = (slice(first, first + self.frames), slice(top, top + size[0]), slice(left, left + size[1]))
        return tuple(torch.from_numpy(np.ascontiguousarray(a[window].transpose(0, 3, 1, 2))).float() / 127.5 - 1.0
                     for a in (blurred, sharp))
