"""The data of one training run: the mixed training stream and the held-out validation views."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from blurgen.deblur.data import DataError, GoProPairs, MixedPairs, MixingSampler, PairsDataset, make_loader
from blurgen.deblur.train_config import SOURCE_NAMES, TrainConfig


@dataclass
class TrainData:
    """What ``build_data`` opens: ``train_set`` (keys ``(source, index, position)``), the
    validation views per source name (uint8 ``(3, H, W)`` centre crops), the sources' sizes and
    the run's length in steps."""

    train_set: MixedPairs
    val_sets: dict
    sizes: list[int]
    steps_per_epoch: int
    total_steps: int

    def loader(self, config: TrainConfig, rank: int, world_size: int, start_step: int, pin_memory: bool):
        """The DataLoader of this rank's batches from ``start_step`` to the end of the run."""
        sampler = MixingSampler(self.sizes, config.ratio, seed=config.seed, batch_size=config.batch_size,
                                rank=rank, world_size=world_size, start_step=start_step,
                                total_steps=self.total_steps)
        return make_loader(self.train_set, sampler, config.workers, pin_memory=pin_memory, seed=config.seed)


def _split(n: int, val_count: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    if n <= val_count:
        raise DataError(f"{name}: {n} samples, need more than the {val_count} held out for validation")
    return np.arange(n - val_count), np.arange(n - val_count, n)


def _synthetic(c: TrainConfig, val_crop: int):
    full = PairsDataset(c.data, crop=c.crop, seed=c.seed)
    tr, va = _split(len(full), c.val_count, c.data)
    train = PairsDataset(c.data, crop=c.crop, flip=True, indices=tr, seed=c.seed, as_uint8=True)
    w, h = full.image_size
    val = (PairsDataset(c.data, crop=min(val_crop, w, h), random_crop=False, flip=False, indices=va, as_uint8=True)
           if c.val_count else None)
    return train, val


def _gopro(c: TrainConfig, val_crop: int):
    # One min_side for every view, so that they leave out the same frames and share indices.
    side = max(c.crop, val_crop) if c.val_count else c.crop
    full = GoProPairs(c.gopro, "train", c.gopro_blur, crop=c.crop, seed=c.seed, min_side=side)
    tr, va = _split(len(full), c.val_count, c.gopro)
    train = GoProPairs(c.gopro, "train", c.gopro_blur, crop=c.crop, indices=tr, seed=c.seed, as_uint8=True,
                       min_side=side)
    val = (GoProPairs(c.gopro, "train", c.gopro_blur, crop=val_crop, random_crop=False, flip=False, indices=va,
                      min_side=side, as_uint8=True) if c.val_count else None)
    return train, val


def build_data(config: TrainConfig, world_size: int) -> TrainData:
    """Open the run's sources (``DataError``/``PairsFileError`` for unusable ones); the last
    ``val_count`` samples of each are held out for validation."""
    val_crop = config.val_crop or config.crop
    train, val = [None, None], [None, None]
    if config.data is not None:
        train[0], val[0] = _synthetic(config, val_crop)
    if config.gopro is not None:
        train[1], val[1] = _gopro(config, val_crop)
    sizes = [len(s) if s is not None else 0 for s in train]
    used = sum(n for n, r in zip(sizes, config.ratio) if r > 0)
    steps_per_epoch = max(1, used // (config.batch_size * world_size))
    return TrainData(train_set=MixedPairs(train),
                     val_sets={SOURCE_NAMES[i]: v for i, v in enumerate(val) if v is not None and config.ratio[i] > 0},
                     sizes=sizes, steps_per_epoch=steps_per_epoch,
                     total_steps=config.max_steps or config.epochs * steps_per_epoch)
