"""Sharp image sources: procedural dead leaves, a directory of images, GoPro sharp frames.

A source hands out random crops. ``crop(seed, index, height, width)`` depends on ``(seed, index)``
alone (its own numpy stream ``[seed, index, SOURCE_STREAM]``), so sample ``i`` of a dataset is the
same whichever worker, shard or resume produced it.

Image files are scanned once when the source is opened: headers only for PNG and JPEG (fast even
for thousands of 1280x720 frames), a full decode for other formats. Unreadable and too-small files
are skipped and counted (``source.skipped``), grayscale, 16-bit and alpha files are converted and
counted (``source.converted``), with one logging warning; nothing usable raises ``SourceError``.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import os
from typing import Protocol, runtime_checkable

import numpy as np

from blurgen.core.common import BlurgenError
from blurgen.core.config import IMAGE_EXTENSIONS
from blurgen.core.imageio import decode_usable, probe_image, to_rgb_u8
from blurgen.sources import gopro
from blurgen.sources.deadleaves import dead_leaves

log = logging.getLogger(__name__)

#: Stream id of the crop draws in ``np.random.default_rng([seed, index, SOURCE_STREAM])``.
SOURCE_STREAM = 1
GOPRO_SPLITS = gopro.SPLITS
#: Crops a source tries (other images) when files fail to decode after the scan, before giving up.
MAX_TRIES = 32


def files_digest(spec: str, paths, names, header: str = "") -> str:
    """SHA-256 (32 hex digits) of each file's name and size in bytes, in order, after ``header``:
    what a resumed run compares to find a source whose files changed."""
    digest = hashlib.sha256(header.encode())
    for path, name in zip(paths, names):
        try:
            size = os.path.getsize(path)
        except OSError as exc:
            raise SourceError(f"source {spec}: {path} vanished ({exc.strerror})") from None
        digest.update(f"{name}\0{size}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:32]


class SourceError(BlurgenError):
    """A source that cannot supply images; the one-line message names it and the problem."""


@runtime_checkable
class Source(Protocol):
    """What the pair generator needs from a sharp-image source."""

    spec: str
    n_images: int  # 0 for procedural sources

    def crop(self, seed: int, index: int, height: int, width: int, inset: int = 0) -> tuple[np.ndarray, int]:
        """uint8 RGB ``(height - 2*inset, width - 2*inset, 3)``: the centre of crop ``index`` of
        ``seed`` (a random ``(height, width)`` window), and the index of the image it came from
        (-1 for procedural sources). ``inset`` only saves work: the pixels do not depend on it."""
        ...

    def crop_with_origin(self, seed: int, index: int, height: int, width: int,
                         inset: int = 0) -> tuple[np.ndarray, int, int, int]:
        """``crop``'s window and image index, plus where the ``(height, width)`` window starts in
        that image: ``(pixels, source_index, y, x)`` (0, 0 for procedural sources)."""
        ...

    def fingerprint(self) -> str:
        """What on disk the crops depend on, as a digest ("" for none): a resumed run compares it."""
        ...

    def relative_paths(self) -> list[str]:
        """The image files ``source_index`` indexes, relative to the source's folder ([] if none)."""
        ...


def _check_crop_args(height: int, width: int, inset: int) -> None:
    if height < 1 or width < 1 or inset < 0 or 2 * inset >= min(height, width):
        raise ValueError(f"bad crop request: {height}x{width} with inset {inset}")


class DeadLeavesSource:
    """Procedural dead-leaves images (see ``blurgen.sources.deadleaves``): offline, unlimited, the default.

    Each crop is a fresh image of the requested size; radii run from ``r_min`` px to half the
    longer side, with density ~ ``r**-exponent``.
    """

    spec = "deadleaves"
    n_images = 0

    def __init__(self, r_min: float = 2.0, exponent: float = 3.0) -> None:
        self.r_min = float(r_min)
        self.exponent = float(exponent)

    def crop(self, seed: int, index: int, height: int, width: int, inset: int = 0) -> tuple[np.ndarray, int]:
        return self.crop_with_origin(seed, index, height, width, inset)[:2]

    def crop_with_origin(self, seed: int, index: int, height: int, width: int,
                         inset: int = 0) -> tuple[np.ndarray, int, int, int]:
        _check_crop_args(height, width, inset)
        rng = np.random.default_rng([seed, index, SOURCE_STREAM])
        window = (inset, inset, height - 2 * inset, width - 2 * inset)
        return dead_leaves(height, width, rng, r_min=self.r_min, exponent=self.exponent, window=window), -1, 0, 0

    def fingerprint(self) -> str:
        """Procedural: its images depend on the code and the draws alone, nothing on disk."""
        return ""

    def relative_paths(self) -> list[str]:
        return []

    def __repr__(self) -> str:
        return f"DeadLeavesSource(r_min={self.r_min}, exponent={self.exponent})"


# --------------------------------------------------------------------------------------------
# Image files


class ImageFileSource:
    """Random crops from a list of image files, scanned (and filtered) once at construction.

    Attributes:
        paths: the usable files, sorted; ``source_index`` indexes this list.
        skipped: counts of files left out: ``corrupt``, ``too_small`` (and, after crops,
            ``failed_decode`` for files whose header read but whose data did not).
        converted: counts of usable files that need converting: ``grayscale``, ``16bit``, ``alpha``.
    """

    def __init__(self, spec: str, files: list[str], min_size: tuple[int, int] = (32, 32),
                 root: str | None = None, warn: bool = True) -> None:
        self.spec = spec
        self.root = root
        self.min_height, self.min_width = (int(v) for v in min_size)
        self.skipped: collections.Counter = collections.Counter()
        self.converted: collections.Counter = collections.Counter()
        self.paths: list[str] = []
        self._sizes: list[tuple[int, int]] = []
        for path in files:
            info = probe_image(path)
            if info is None:
                self.skipped["corrupt"] += 1
                continue
            height, width, channels, depth = info
            if height < self.min_height or width < self.min_width:
                self.skipped["too_small"] += 1
                continue
            self.paths.append(path)
            self._sizes.append((height, width))
            self.converted["grayscale"] += channels <= 2
            self.converted["alpha"] += channels in (2, 4)
            self.converted["16bit"] += depth > 8
        self.converted = +self.converted  # drop zero counts
        self._bad: set[int] = set()
        self._cache: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()
        if self.skipped and warn:
            log.warning("%s: skipped %s; using %d image(s)", spec, dict(self.skipped), len(self.paths))
        if not self.paths:
            problem = (f"no usable image of at least {self.min_width}x{self.min_height} px (a crop is the "
                       f"output size plus the kernel size - 1)")
            if self.skipped:
                problem += f" (skipped: {', '.join(f'{k} {v}' for k, v in sorted(self.skipped.items()))})"
            raise SourceError(f"source {spec}: {problem}")

    @property
    def n_images(self) -> int:
        return len(self.paths)

    def fingerprint(self) -> str:
        """Digest of the usable files (path relative to the root, and size in bytes), in order.

        Sample i takes image ``source_index`` of this list, so a file added, removed or replaced
        by one of another size changes the data: a resumed run compares digests and refuses.
        """
        names = [os.path.relpath(path, self.root) if self.root else path for path in self.paths]
        return files_digest(self.spec, self.paths, names)

    def _load(self, j: int) -> np.ndarray | None:
        if j in self._cache:
            self._cache.move_to_end(j)
            return self._cache[j]
        # Kept as decoded (BGR, any depth): crop() converts only the window it takes, which is
        # the same as converting the whole image first (the conversion is per pixel) and saves a
        # full-image copy per crop (~5 ms for a 1280x720 frame).
        image = decode_usable(self.paths[j])
        if image is not None and (image.shape[0] < self.min_height or image.shape[1] < self.min_width):
            image = None
        if image is not None:
            # A tiny cache: consecutive crops of the same image (small datasets) decode once.
            self._cache[j] = image
            if len(self._cache) > 4:
                self._cache.popitem(last=False)
        return image

    def relative_paths(self) -> list[str]:
        return [os.path.relpath(path, self.root) if self.root else path for path in self.paths]

    def crop(self, seed: int, index: int, height: int, width: int, inset: int = 0) -> tuple[np.ndarray, int]:
        return self.crop_with_origin(seed, index, height, width, inset)[:2]

    def crop_with_origin(self, seed: int, index: int, height: int, width: int,
                         inset: int = 0) -> tuple[np.ndarray, int, int, int]:
        _check_crop_args(height, width, inset)
        if height > self.min_height or width > self.min_width:
            raise ValueError(f"crop {width}x{height} is larger than the source's minimum image size "
                             f"{self.min_width}x{self.min_height}")
        rng = np.random.default_rng([seed, index, SOURCE_STREAM])
        for _ in range(MAX_TRIES):
            j = int(rng.integers(len(self.paths)))
            oy_u, ox_u = rng.random(2)  # drawn even if j fails, so later draws do not shift
            image = None if j in self._bad else self._load(j)
            if image is None:
                if j not in self._bad:
                    self._bad.add(j)
                    self.skipped["failed_decode"] += 1
                    log.warning("%s: cannot decode %s; skipping it", self.spec, self.paths[j])
                continue
            oy = min(int(oy_u * (image.shape[0] - height + 1)), image.shape[0] - height)
            ox = min(int(ox_u * (image.shape[1] - width + 1)), image.shape[1] - width)
            window = to_rgb_u8(image[oy + inset:oy + height - inset, ox + inset:ox + width - inset])
            return window, j, oy, ox  # a new array (every conversion copies): the cache keeps `image`
        raise SourceError(f"source {self.spec}: {MAX_TRIES} images in a row failed to decode")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.spec!r}, n_images={self.n_images})"


class ImageDirectorySource(ImageFileSource):
    """Every image file under ``root`` (recursive, sorted; hidden folders skipped)."""

    def __init__(self, root: str, min_size: tuple[int, int] = (32, 32), warn: bool = True) -> None:
        if not os.path.isdir(root):
            raise SourceError(f"source {root}: not a directory")
        files = []
        for folder, dirs, names in os.walk(root):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            files.extend(os.path.join(folder, n) for n in sorted(names)
                         if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith("."))
        if not files:
            raise SourceError(f"source {root}: no image files (looked for {', '.join(IMAGE_EXTENSIONS)})")
        super().__init__(root, files, min_size, root=root, warn=warn)


class GoProSource(ImageFileSource):
    """Sharp frames of GOPRO_Large (``blurgen.sources.gopro``): ``ROOT/{train,test}/GOPRxxxx_xx_xx/sharp/``."""

    def __init__(self, root: str, split: str = "train", min_size: tuple[int, int] = (32, 32),
                 warn: bool = True) -> None:
        spec = f"{gopro.PREFIX}{root}"
        try:
            frames = gopro.scan(root, split)
        except gopro.GoProLayoutError as exc:
            raise SourceError(f"source {spec}: {exc}") from None
        super().__init__(spec, [frame.sharp for frame in frames], min_size, root=root, warn=warn)
        self.split = split


def open_source(spec: str, split: str = "train", min_size: tuple[int, int] = (32, 32),
                warn: bool = True) -> Source:
    """Open a source by its spec: ``"deadleaves"``, ``"gopro:ROOT"`` or a directory path.

    Args:
        spec: the source.
        split: GoPro split, ``"train"`` or ``"test"`` (ignored by the other sources).
        min_size: ``(height, width)``: images smaller than this are skipped (the crop size
            the caller needs, e.g. ``(H + k - 1, W + k - 1)``).
        warn: log the files skipped (once per run: worker processes that open the same source
            again pass False).

    Raises:
        SourceError: nothing usable (missing or empty folder, only corrupt or too-small files).
    """
    if spec == "deadleaves":
        return DeadLeavesSource()
    root = gopro.split_spec(spec)
    if root is not None:
        return GoProSource(root, split, min_size, warn)
    return ImageDirectorySource(spec, min_size, warn)
