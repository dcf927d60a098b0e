"""Consecutive sharp frames of videos, for clips that combine real scene motion with synthetic shake.

A ``SequenceSource`` holds frame sequences: the ``sharp/`` folders of a GoPro split
(``gopro:ROOT``, 240 fps) or every folder under a directory that holds image files (its files in
name order are one sequence; folders named ``blur`` or ``blur_gamma`` are skipped, they are the
blurred twins of a GoPro-style tree). A clip of ``T`` frames at ``fps`` reads, for its frame j,
sharp frame ``first + floor(j * source_fps / fps + 0.5)`` of one sequence (``frame_offsets``), at
the same crop window: the scene moves as it was filmed, and the camera shake is added on top.

Clip i of seed s draws its sequence, first frame and window from the stream
``[s, i, SOURCE_STREAM]`` among the sequences long enough for the clip, so it depends on (s, i)
and the files alone. The first frame is drawn over the positions the whole clip fits in, so (unlike
clips of a still) a longer clip does not extend a shorter one. Sequences too short for a clip, or
with a first frame smaller than the crop, are skipped and counted (``skipped``); none left raises
``SourceError`` in one line.

Example:
    >>> frame_offsets(4, fps=30, source_fps=240).tolist(), frame_offsets(3, fps=24, source_fps=60).tolist()
    ([0, 8, 16, 24], [0, 3, 5])
"""

from __future__ import annotations

import collections
import logging
import os

import numpy as np

from blurgen.core.config import IMAGE_EXTENSIONS
from blurgen.core.imageio import decode_usable, probe_image, to_rgb_u8
from blurgen.sources import gopro
from blurgen.sources.base import SOURCE_STREAM, SourceError, files_digest

log = logging.getLogger(__name__)

#: Frame rate of GoPro's sharp sequences (GOPRO_Large was filmed at 240 fps).
GOPRO_FPS = 240.0


def frame_offsets(frames: int, fps: float, source_fps: float) -> np.ndarray:
    """int64 ``(frames,)``: the sequence frame (after the clip's first) each clip frame reads,
    ``floor(j * source_fps / fps + 0.5)``."""
    return np.floor(np.arange(frames) * (float(source_fps) / float(fps)) + 0.5).astype(np.int64)


def _folder_sequences(root: str) -> list[tuple[str, list[str]]]:
    if not os.path.isdir(root):
        raise SourceError(f"source {root}: not a directory")
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in gopro.BLUR_FOLDERS)
        files = [os.path.join(folder, n) for n in sorted(names)
                 if n.lower().endswith(IMAGE_EXTENSIONS) and not n.startswith(".")]
        if files:
            found.append((os.path.relpath(folder, root), files))
    return found


def _gopro_sequences(root: str, split: str) -> list[tuple[str, list[str]]]:
    try:
        frames = gopro.scan(root, split)
    except gopro.GoProLayoutError as exc:
        raise SourceError(f"source {gopro.PREFIX}{root}: {exc}") from None
    grouped: dict[str, list[str]] = {}
    for frame in frames:
        grouped.setdefault(frame.sequence, []).append(frame.sharp)
    return sorted(grouped.items())


class SequenceSource:
    """Crops of consecutive frames of frame sequences (see the module docstring).

    Attributes:
        sequences: the usable ``(name, frame paths)``, sorted; ``source_index`` indexes it.
        skipped: counts of sequences left out: ``too_short``, ``too_small``, ``corrupt``.
    """

    def __init__(self, spec: str, split: str = "train", min_size: tuple[int, int] = (32, 32),
                 span: int = 1, warn: bool = True) -> None:
        self.spec = spec
        root = gopro.split_spec(spec)
        self.root = root if root is not None else spec
        found = _gopro_sequences(root, split) if root is not None else _folder_sequences(spec)
        if not found:
            raise SourceError(f"source {spec}: no folder of image files")
        self.min_height, self.min_width = (int(v) for v in min_size)
        self.span = int(span)
        self.skipped: collections.Counter = collections.Counter()
        self.sequences: list[tuple[str, list[str]]] = []
        self._sizes: list[tuple[int, int]] = []
        for name, files in found:
            info = probe_image(files[0])
            problem = ("too_short" if len(files) < self.span else "corrupt" if info is None else
                       "too_small" if info[0] < self.min_height or info[1] < self.min_width else None)
            if problem:
                self.skipped[problem] += 1
                continue
            self.sequences.append((name, files))
            self._sizes.append((info[0], info[1]))
        if self.skipped and warn:
            log.warning("%s: skipped sequences %s; using %d", spec, dict(self.skipped), len(self.sequences))
        if not self.sequences:
            longest = max(len(files) for _, files in found)
            raise SourceError(f"source {spec}: no sequence holds the {self.span} frames a clip takes (longest: "
                              f"{longest}; skipped {dict(self.skipped)}); use fewer frames, a higher --fps or a "
                              "lower --source-fps")

    @property
    def n_images(self) -> int:
        return sum(len(files) for _, files in self.sequences)

    def relative_paths(self) -> list[str]:
        return [os.path.relpath(path, self.root) for _, files in self.sequences for path in files]

    def fingerprint(self) -> str:
        """Digest of the usable frames (relative path and size), in order."""
        paths = [p for _, files in self.sequences for p in files]
        return files_digest(self.spec, paths, self.relative_paths(), f"span {self.span}\n")

    def clip_stills(self, seed: int, index: int, offsets: np.ndarray, height: int, width: int
                    ) -> tuple[list[np.ndarray], int, int, int, int]:
        """Clip ``index`` of ``seed``: uint8 ``(height, width, 3)`` crops of frames ``first +
        offsets`` of one sequence at one window, the sequence index, ``first``, and the window's
        ``(y, x)``."""
        offsets = np.asarray(offsets, np.int64)
        if offsets.size == 0 or int(offsets[-1]) >= self.span or height > self.min_height or width > self.min_width:
            raise ValueError(f"offsets up to {int(offsets.max(initial=-1))} and crop {width}x{height} exceed the "
                             f"source's span {self.span} and size {self.min_width}x{self.min_height}")
        rng = np.random.default_rng([seed, index, SOURCE_STREAM])
        s = int(rng.integers(len(self.sequences)))
        name, files = self.sequences[s]
        first = int(rng.integers(len(files) - self.span + 1))
        oy_u, ox_u = rng.random(2)
        full_h, full_w = self._sizes[s]
        oy = min(int(oy_u * (full_h - height + 1)), full_h - height)
        ox = min(int(ox_u * (full_w - width + 1)), full_w - width)
        stills = []
        for offset in offsets:
            path = files[first + int(offset)]
            image = decode_usable(path)
            if image is None or image.shape[:2] != (full_h, full_w):
                raise SourceError(f"source {self.spec}: {path} does not decode as a {full_w}x{full_h} frame of "
                                  f"sequence {name}")
            stills.append(to_rgb_u8(image[oy:oy + height, ox:ox + width]))
        return stills, s, first, oy, ox

    def __repr__(self) -> str:
        return f"SequenceSource({self.spec!r}, sequences={len(self.sequences)}, span={self.span})"
