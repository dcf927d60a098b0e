"""The GoPro dataset's layout (GOPRO_Large), read by one scanner for every user of it.

``ROOT/{train,test}/GOPRxxxx_xx_xx/{blur,blur_gamma,sharp}/NNNNNN.png``, 1280x720 frames, 2103
train and 1111 test pairs. ``blurgen make --source gopro:ROOT`` takes the sharp frames; the
trainer and ``blurgen eval`` take blurred/sharp pairs. Light: no numba, no OpenCV, no torch.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from blurgen.core.common import BlurgenError
from blurgen.core.config import IMAGE_EXTENSIONS

PREFIX = "gopro:"
SPLITS = ("train", "test")
BLUR_FOLDERS = ("blur", "blur_gamma")


class GoProLayoutError(BlurgenError):
    """A folder that is not a usable GoPro tree; the message names the folder and what is wrong."""


class Frame(NamedTuple):
    """One frame of a sequence: its sharp file and, when asked for, its blurred twin."""

    sequence: str
    sharp: str
    blurred: str | None = None


def split_spec(spec: str) -> str | None:
    """The ROOT of a ``gopro:ROOT`` source or data spec (``~`` expanded), None for other specs."""
    if not spec.startswith(PREFIX):
        return None
    return os.path.expanduser(spec[len(PREFIX):])


def _images(folder: str) -> list[str]:
    return sorted(name for name in os.listdir(folder)
                  if name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith("."))


def scan(root: str, split: str = "train", blur_folder: str | None = None) -> list[Frame]:
    """Every frame of a split, sorted by sequence and frame name.

    Args:
        root: the folder holding ``train/`` and ``test/``.
        split: ``"train"`` or ``"test"``.
        blur_folder: None for sharp frames only; ``"blur"`` (averaged in sRGB) or
            ``"blur_gamma"`` (averaged in linear light) to pair each sharp frame with its blurred
            one (every sequence must then have that folder, with the same frame names).

    Raises:
        GoProLayoutError: no ``split/*/sharp`` folder, no frames, a missing blur folder or
            blur/sharp frames that do not pair up one to one.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if blur_folder is not None and blur_folder not in BLUR_FOLDERS:
        raise ValueError(f"blur_folder must be one of {BLUR_FOLDERS}, got {blur_folder!r}")
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        raise GoProLayoutError(f"{root}: not a GoPro root (no {split}/ folder; expected "
                               f"{split}/GOPRxxxx_xx_xx/sharp/*.png)")
    sequences = sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d, "sharp")))
    if not sequences:
        raise GoProLayoutError(f"{root}: not a GoPro root (no {split}/*/sharp folders)")
    frames: list[Frame] = []
    for sequence in sequences:
        folder = os.path.join(split_dir, sequence)
        names = _images(os.path.join(folder, "sharp"))
        if blur_folder is not None:
            _check_pairs_up(folder, blur_folder, names)
        frames += [Frame(sequence, os.path.join(folder, "sharp", name),
                         None if blur_folder is None else os.path.join(folder, blur_folder, name))
                   for name in names]
    if not frames:
        raise GoProLayoutError(f"{split_dir}: no frames in any sharp/ folder")
    return frames


def _check_pairs_up(folder: str, blur_folder: str, sharp_names: list[str]) -> None:
    blur_dir = os.path.join(folder, blur_folder)
    if not os.path.isdir(blur_dir):
        raise GoProLayoutError(f"{folder}: no {blur_folder}/ folder beside sharp/")
    blurred = _images(blur_dir)
    if blurred != sharp_names:
        raise GoProLayoutError(f"{folder}: {len(blurred)} {blur_folder} frames vs {len(sharp_names)} sharp "
                               "frames (names must match one to one)")
