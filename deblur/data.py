"""Training data for the DeblurGAN: blurgen HDF5 pairs, GoPro frames, and a mixing sampler.

Every sample is addressed by a *key* ``(source, index, position)``: which source, which image
in it, and the sample's global position in the training stream (0, 1, 2, ...). The random crop
and flips are drawn from ``(seed, position)`` alone, so a sample is the same whichever DataLoader
worker loads it, however many ranks share the stream and wherever a run was resumed.

Tensors are float32 ``(3, H, W)`` RGB in ``[-1, 1]`` (``2 * u8 / 255 - 1``); a DataLoader batch is
``(B, 3, crop, crop)``.

The HDF5 file is opened lazily inside each process that reads it (the fastMRI pattern): a
dataset pickled or forked into a worker carries only the path.
"""

from __future__ import annotations

import collections
import logging
import os
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from blurgen.core.common import BlurgenError
from blurgen.sources import gopro
from blurgen.store.reader import PairsFile
from blurgen.store.schema import PairsFileError

log = logging.getLogger(__name__)

#: Frame pairs GoProPairs tries (the next ones) when a frame fails to decode.
MAX_DECODE_TRIES = 16

__all__ = ["DataError", "PairsDataset", "GoProPairs", "MixedPairs", "MixingSampler",
           "to_tensor", "to_uint8", "normalize", "worker_init", "make_loader", "PairsFileError"]


class DataError(BlurgenError):
    """A data source that cannot be used (bad GoPro tree, images smaller than the crop, ...).
    The message is one line naming the path and the problem."""


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> float32 ``(3, H, W)`` in ``[-1, 1]``."""
    return normalize(to_chw_uint8(image))  # the trainer's and inference's scaling, exactly


def to_chw_uint8(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` -> uint8 ``(3, H, W)`` tensor (no scaling; see ``normalize``)."""
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))


def normalize(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images (any shape) -> float32 in ``[-1, 1]``; float input is returned unchanged.

    The trainer's loaders hand uint8 crops across processes and to the device and scale them
    there: a quarter of the bytes through shared memory and host-to-device copies, and the
    arithmetic leaves the DataLoader workers."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)  # exact at 0 and 255, unlike * (2 / 255)
    return batch


def to_uint8(tensor: torch.Tensor) -> np.ndarray:
    """float ``(3, H, W)`` in ``[-1, 1]`` -> uint8 ``(H, W, 3)`` RGB (rounded, clipped)."""
    array = ((tensor.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return array.to(torch.uint8).permute(1, 2, 0).numpy()


def to_unit_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 ``(H, W, 3)`` RGB -> float32 ``(3, H, W)`` in ``[0, 1]`` (``u8 / 255``; NAFNet/BasicSR)."""
    return to_chw_uint8(image).float().div_(255.0)


def _converter(as_uint8: bool, value_range: tuple[float, float]):
    """The item conversion of a dataset: uint8, ``[-1, 1]`` or ``[0, 1]`` float32."""
    value_range = tuple(float(v) for v in value_range)
    if value_range not in ((-1.0, 1.0), (0.0, 1.0)):
        raise ValueError(f"value_range={value_range} must be (-1, 1) or (0, 1)")
    if as_uint8:
        if value_range != (-1.0, 1.0):
            raise ValueError("as_uint8=True returns [0, 255] uint8; leave value_range at its default with it")
        return to_chw_uint8
    return to_tensor if value_range == (-1.0, 1.0) else to_unit_tensor


def _check_crop(crop) -> None:
    if crop is not None and (isinstance(crop, bool) or int(crop) != crop or crop < 1):
        raise ValueError(f"crop={crop!r} must be a side >= 1 px, or None for whole images")


def augment_rng(seed: int, position: int) -> np.random.Generator:
    """The random stream of the sample at global ``position`` of a run seeded ``seed``."""
    return np.random.default_rng([int(seed), int(position), 0xB1A5])


def crop_pair(blurred: np.ndarray, sharp: np.ndarray, crop: int | None, flip: bool,
              rng: np.random.Generator | None, random_crop: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Cut the same ``crop x crop`` window from both images (random offsets from ``rng`` if
    ``random_crop``, else the centre; the centre too when ``rng`` is None) and apply the same
    random flips to both.

    Flips keep a pair consistent: flipping a blurred image equals blurring the flipped sharp
    image with the flipped kernel, which is as plausible a camera shake as the original.
    ``crop=None`` keeps the whole image.
    """
    h, w = blurred.shape[:2]
    if crop is not None:
        if h < crop or w < crop:
            raise DataError(f"images are {w}x{h}, smaller than the crop {crop}x{crop}")
        if rng is None or not random_crop:
            top, left = (h - crop) // 2, (w - crop) // 2
        else:
            top, left = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
        blurred = blurred[top:top + crop, left:left + crop]
        sharp = sharp[top:top + crop, left:left + crop]
    if flip and rng is not None:
        horizontal, vertical = rng.random(2) < 0.5
        if horizontal:
            blurred, sharp = blurred[:, ::-1], sharp[:, ::-1]
        if vertical:
            blurred, sharp = blurred[::-1], sharp[::-1]
    return blurred, sharp


def _parse_key(key, seed: int, augment: bool) -> tuple[int, np.random.Generator | None]:
    """``(index, position)`` -> the random crop/flips of training position ``position`` (a pure
    function of ``(seed, position)``). A plain ``index`` (a ``DataLoader(shuffle=True)``) -> with
    ``augment``, fresh draws from torch's random stream (which the DataLoader seeds per worker,
    so ``torch.manual_seed`` makes them repeatable); without, the centre crop."""
    if isinstance(key, (tuple, list)):
        index, position = key
        return int(index), augment_rng(seed, position)
    if not augment:
        return int(key), None
    return int(key), np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))


class PairsDataset(Dataset):
    """Blurred/sharp pairs from a blurgen HDF5 file (schema checked when constructed).

    Args:
        path: the ``.h5`` pairs file.
        crop: side of the square crop cut from both images (``None``: whole images).
        flip: random horizontal/vertical flips (same for both images of a pair).
        indices: the samples this dataset exposes (default all ``n_written``); use it to hold out
            a validation slice.
        seed: run seed for the crop/flip streams of ``(index, position)`` keys.
        as_uint8: return uint8 ``(3, crop, crop)`` in ``[0, 255]`` instead (scale later with
            ``normalize``, e.g. on the GPU).
        random_crop: random crop offsets (else the centre crop).
        value_range: ``(-1, 1)`` (default, DeblurGAN's) or ``(0, 1)`` (``u8 / 255``, what NAFNet and
            BasicSR models expect) for the float tensors.

    ``ds[i]`` (int, as a ``DataLoader(dataset, shuffle=True)`` asks) is sample ``indices[i]``
    with a random crop and flips drawn from torch's random stream (``random_crop=False,
    flip=False``: the deterministic centre crop); ``ds[(i, position)]`` the crop/flips of the
    sample at training position ``position``, a pure function of ``(seed, position)`` (what the
    trainer uses, so a resumed run sees the same crops). Both return ``(blurred, sharp)``:
    float32 ``(3, crop, crop)`` in ``value_range``.

    Raises:
        ValueError: ``crop`` below 1, an unknown ``value_range``.
        PairsFileError: missing, foreign or damaged file (one-line message).
        DataError: no samples, or images smaller than ``crop``.
    """

    def __init__(self, path: str | os.PathLike, crop: int | None = 256, flip: bool = True,
                 indices: Sequence[int] | None = None, seed: int = 0, as_uint8: bool = False,
                 random_crop: bool = True, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        _check_crop(crop)
        self.path = os.fspath(path)
        self.crop, self.flip, self.seed, self.random_crop = crop, flip, int(seed), bool(random_crop)
        self._convert = _converter(as_uint8, value_range)
        # Validate in a handle that is closed again at once, so no open HDF5 file is ever
        # inherited by a forked worker; each process opens its own in _reader().
        with PairsFile(self.path) as probe:
            if probe.frames is not None:
                raise DataError(f"{self.path}: a clips file (schema 3, {probe.frames} frames per clip); this "
                                "trainer reads image pairs (use blurgen.deblur.clips_data.ClipsDataset for video)")
            n, (h, w, _) = len(probe), probe.image_shape
        if n == 0:
            raise DataError(f"{self.path}: no complete samples (n_written = 0)")
        if crop is not None and (h < crop or w < crop):
            raise DataError(f"{self.path}: images are {w}x{h}, smaller than the crop {crop}x{crop}")
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise DataError(f"{self.path}: indices outside 0..{n - 1}")
        self.image_size = (w, h)
        self._file: PairsFile | None = None
        self._pid: int | None = None

    def _reader(self) -> PairsFile:
        if self._file is None or self._pid != os.getpid():
            self._file, self._pid = PairsFile(self.path), os.getpid()
        return self._file

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_file"] = state["_pid"] = None
        return state

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        index, rng = _parse_key(key, self.seed, self.random_crop or self.flip)
        blurred, sharp, _ = self._reader()[int(self.indices[index])]
        blurred, sharp = crop_pair(blurred, sharp, self.crop, self.flip, rng, self.random_crop)
        return self._convert(blurred), self._convert(sharp)


def scan_gopro(root: str | os.PathLike, split: str = "train", blur_folder: str = "blur"
               ) -> list[tuple[Path, Path]]:
    """``(blurred, sharp)`` paths of a GOPRO_Large split, sorted by sequence and frame
    (``blurgen.sources.gopro.scan``, the scanner ``blurgen make --source gopro:`` uses too).

    Raises ``DataError`` for a root without ``SPLIT/*/sharp`` folders, a sequence without the
    blur folder, or blur/sharp frames that do not pair up one to one.
    """
    try:
        frames = gopro.scan(os.fspath(root), split, blur_folder)
    except (gopro.GoProLayoutError, ValueError) as exc:
        raise DataError(str(exc)) from None
    return [(Path(frame.blurred), Path(frame.sharp)) for frame in frames]


def read_rgb(path: Path) -> np.ndarray:
    """uint8 ``(H, W, 3)`` RGB from an image file; ``DataError`` if unreadable."""
    from blurgen.core.imageio import read_rgb as read  # local: OpenCV is only needed for GoPro frames

    image = read(str(path))
    if image is None:
        raise DataError(f"{path}: unreadable image")
    return image


class GoProPairs(Dataset):
    """Blurred/sharp frame pairs of the GoPro dataset (GOPRO_Large).

    Args:
        root: folder holding ``train/`` and ``test/``.
        split: ``"train"`` or ``"test"``.
        blur_folder: ``"blur"`` (averaged in sRGB) or ``"blur_gamma"`` (averaged in linear light).
        crop, flip, indices, seed, as_uint8, random_crop, value_range: as for ``PairsDataset``.

    Items as ``PairsDataset``: float32 ``(3, crop, crop)`` in ``[-1, 1]``. The tree is scanned and
    checked when constructed (``DataError``); frames are decoded on access.

    With a crop, frame pairs are checked from their file headers when constructed: pairs with an
    unreadable header, blur and sharp frames of different sizes, or a side below ``min_side``
    (default ``crop``) are left out, counted in ``skipped`` and logged, so one bad frame cannot
    stop a long training run (give every view of one tree the same ``min_side`` so their indices
    agree). A frame that still fails to decode is replaced by the next pair in ``indices``.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", blur_folder: str = "blur",
                 crop: int | None = 256, flip: bool = True, indices: Sequence[int] | None = None,
                 seed: int = 0, as_uint8: bool = False, min_side: int | None = None,
                 random_crop: bool = True, value_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        _check_crop(crop)
        self.root = os.fspath(root)
        self.pairs = scan_gopro(root, split, blur_folder)
        self.skipped: collections.Counter = collections.Counter()
        min_side = min_side if min_side is not None else crop
        if min_side is not None:
            self.pairs = self._usable(self.pairs, int(min_side))
        self.crop, self.flip, self.seed, self.random_crop = crop, flip, int(seed), bool(random_crop)
        self._convert = _converter(as_uint8, value_range)
        n = len(self.pairs)
        self.indices = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if self.indices.size and (self.indices.min() < 0 or self.indices.max() >= n):
            raise DataError(f"{self.root}: indices outside 0..{n - 1}")

    def __len__(self) -> int:
        return len(self.indices)

    def _usable(self, pairs: list[tuple[Path, Path]], min_side: int) -> list[tuple[Path, Path]]:
        from blurgen.core.imageio import probe_image  # header reads: fast even for thousands of frames

        kept = []
        for blur_path, sharp_path in pairs:
            a, b = probe_image(str(blur_path)), probe_image(str(sharp_path))
            if a is None or b is None:
                problem = "unreadable"
            elif a[:2] != b[:2]:
                problem = "blur/sharp sizes differ"
            elif min(a[:2]) < min_side:
                problem = f"smaller than {min_side} px"
            else:
                kept.append((blur_path, sharp_path))
                continue
            if not self.skipped:
                first = f"{blur_path.parent.parent.name}/{blur_path.name}"
            self.skipped[problem] += 1
        if self.skipped:
            log.warning("%s: left out %s frame pairs (first: %s); using %d", self.root, dict(self.skipped),
                        first, len(kept))
        if not kept:
            raise DataError(f"{self.root}: no usable frame pair ({', '.join(f'{k}: {v}' for k, v in self.skipped.items())}"
                            f"; first: {first})")
        return kept

    def _read(self, position: int) -> tuple[Path, np.ndarray, np.ndarray] | None:
        blur_path, sharp_path = self.pairs[int(self.indices[position])]
        try:
            blurred, sharp = read_rgb(blur_path), read_rgb(sharp_path)
        except DataError as exc:
            log.warning("%s; using the next frame pair", exc)
            return None
        if blurred.shape != sharp.shape:
            raise DataError(f"{blur_path}: {blurred.shape[1]}x{blurred.shape[0]} does not match "
                            f"its sharp frame {sharp.shape[1]}x{sharp.shape[0]}")
        return blur_path, blurred, sharp

    def __getitem__(self, key) -> tuple[torch.Tensor, torch.Tensor]:
        index, rng = _parse_key(key, self.seed, self.random_crop or self.flip)
        for k in range(MAX_DECODE_TRIES):  # a frame that fails to decode: the next pair, deterministically
            found = self._read((index + k) % len(self.indices))
            if found is not None:
                break
        else:
            raise DataError(f"{self.root}: {MAX_DECODE_TRIES} frame pairs in a row failed to decode")
        blur_path, blurred, sharp = found
        try:
            blurred, sharp = crop_pair(blurred, sharp, self.crop, self.flip, rng, self.random_crop)
        except DataError as exc:
            raise DataError(f"{blur_path}: {exc}") from None
        return self._convert(blurred), self._convert(sharp)


class MixedPairs(Dataset):
    """Several sources behind one key space: ``ds[(source, index, position)]`` is
    ``sources[source][(index, position)]``. Sources may be ``None`` (not given)."""

    def __init__(self, sources: Sequence[Dataset | None]) -> None:
        self.sources = list(sources)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources if s is not None)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        source, index, position = key
        return self.sources[source][(index, position)]


class MixingSampler:
    """Deterministic batches of keys ``(source, index, position)`` mixing sources by a ratio.

    The stream is a pure function of the global position ``g = 0, 1, 2, ...``:

    * the source of ``g``: positions come in cycles of ``sum(ratio)``; each cycle holds exactly
      ``ratio[s]`` slots of source ``s``, in an order shuffled per cycle from ``(seed, cycle)``.
      So 2:1 means exactly two synthetic samples per GoPro sample in every cycle of three;
    * the index: the k-th draw from source ``s`` is element ``k mod n_s`` of a permutation of
      that source drawn from ``(seed, s, k div n_s)``: each epoch of a source visits every sample
      once, in a fresh order.

    Rank ``r`` of ``world_size`` takes, at step ``t``, positions
    ``t*B*W + r*B .. t*B*W + r*B + B - 1`` (``B = batch_size`` per rank), so the union over ranks
    of step ``t`` is exactly the global batch one process with batch ``B*W`` would see. Starting
    at ``start_step`` reproduces the rest of an uninterrupted stream: that is how resume
    continues exactly.

    Args:
        sizes: samples in each source (0 for a source not given).
        ratio: non-negative share per source; a source with size 0 must have share 0.
        seed, batch_size, rank, world_size, start_step: as above.
        total_steps: stop after this step (``None``: infinite).
    """

    def __init__(self, sizes: Sequence[int], ratio: Sequence[int], seed: int = 0, batch_size: int = 1,
                 rank: int = 0, world_size: int = 1, start_step: int = 0,
                 total_steps: int | None = None) -> None:
        if len(sizes) != len(ratio):
            raise ValueError(f"sizes {list(sizes)} and ratio {list(ratio)} differ in length")
        if any(r < 0 for r in ratio) or sum(ratio) == 0:
            raise ValueError(f"ratio {list(ratio)} needs non-negative shares, at least one > 0")
        for s, (n, r) in enumerate(zip(sizes, ratio)):
            if r > 0 and n <= 0:
                raise ValueError(f"ratio gives source {s} a share {r} but it has no samples")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank={rank} outside 0..{world_size - 1}")
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.sizes, self.ratio = [int(n) for n in sizes], [int(r) for r in ratio]
        self.seed, self.batch_size = int(seed), int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.start_step, self.total_steps = int(start_step), total_steps
        self._slots = np.repeat(np.arange(len(self.ratio)), self.ratio)
        self._cache: dict[tuple[int, int], np.ndarray] = {}

    @property
    def global_batch(self) -> int:
        return self.batch_size * self.world_size

    def _cycle(self, cycle: int) -> np.ndarray:
        key = (-1, cycle)
        if key not in self._cache:
            self._cache = {k: v for k, v in self._cache.items() if k[0] >= 0}  # keep one cycle
            self._cache[key] = np.random.default_rng([self.seed, cycle, 0xC1C]).permutation(self._slots)
        return self._cache[key]

    def _permutation(self, source: int, epoch: int) -> np.ndarray:
        key = (source, epoch)
        if key not in self._cache:
            # One permutation per source at a time: a source's epochs are visited in order.
            self._cache = {k: v for k, v in self._cache.items() if k[0] != source}
            rng = np.random.default_rng([self.seed, source, epoch, 0x5A3])
            self._cache[key] = rng.permutation(self.sizes[source])
        return self._cache[key]

    def key(self, position: int) -> tuple[int, int, int]:
        """The key of global ``position``: ``(source, index, position)``."""
        length = len(self._slots)
        cycle, offset = divmod(int(position), length)
        pattern = self._cycle(cycle)
        source = int(pattern[offset])
        draw = cycle * self.ratio[source] + int(np.count_nonzero(pattern[:offset] == source))
        epoch, k = divmod(draw, self.sizes[source])
        return source, int(self._permutation(source, epoch)[k]), int(position)

    def batch(self, step: int) -> list[tuple[int, int, int]]:
        """This rank's keys for ``step``."""
        first = step * self.global_batch + self.rank * self.batch_size
        return [self.key(first + j) for j in range(self.batch_size)]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        step = self.start_step
        while self.total_steps is None or step < self.total_steps:
            yield self.batch(step)
            step += 1

    def __len__(self) -> int:
        if self.total_steps is None:
            raise TypeError("an infinite MixingSampler has no length")
        return max(0, self.total_steps - self.start_step)


def make_loader(dataset: Dataset, batch_sampler: MixingSampler, workers: int = 2, pin_memory: bool = False,
                seed: int = 0) -> "torch.utils.data.DataLoader":
    """A DataLoader over ``batch_sampler``'s keys with ``workers`` *spawned* processes.

    Spawn, not fork: a process that has already run OpenCV's or numba's thread pools (GoPro
    decoding, kernel code, tests) can deadlock a forked child that touches them again (seen
    here: a forked worker hung in ``cv2.setNumThreads``). Each worker gets one thread per
    library (``worker_init``) and opens the HDF5 file itself. The loader's base seed comes from
    a private generator so creating a loader never consumes the global torch RNG, whose state
    belongs to the exact-resume contract (augmentation itself is keyed by sample position).
    """
    from torch.utils.data import DataLoader

    return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=workers, worker_init_fn=worker_init,
                      multiprocessing_context="spawn" if workers > 0 else None, pin_memory=pin_memory,
                      generator=torch.Generator().manual_seed(seed))


#: Seconds a DataLoader worker lives on after a SIGTERM (``worker_init``).
TERM_GRACE_S = 60


def _terminate_later(signum, frame) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    signal.alarm(TERM_GRACE_S)


def worker_init(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: one thread each for torch and OpenCV, so ``workers``
    processes do not oversubscribe the cores (``--threads`` sets the training process's own).
    A Ctrl-C (SIGINT, sent to the whole process group) is ignored here: the trainer stops at a
    step boundary and shuts its workers down itself. A SIGTERM (a scheduler's, also sent to every
    process) ends the worker ``TERM_GRACE_S`` seconds later instead of at once, so the trainer can
    finish its step and write its checkpoint first; torch's own SIGTERM of a stuck worker still
    ends it then."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate_later)
    torch.set_num_threads(1)
    try:
        import cv2

        cv2.setNumThreads(1)
    except ImportError:  # GoPro decoding unavailable; HDF5 sources do not need it
        pass
