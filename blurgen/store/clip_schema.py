"""Schema version 3: clips (hand-held video), checked without importing the rest of the store.

::

    /blurred   uint8   (N, T, H, W, 3)   one frame per chunk (1, 1, H, W, 3)
    /sharp     uint8   (N, T, H, W, 3)
    /kernel    float32 (N, T, k, k)      each frame's local kernel at the window centre
    /motion/rotation           float32 (N, T, K, 3)  per frame, rotation vectors to its mean pose
    /motion/translation        float32 (N, T, K, 3)
    /motion/frame_rotation     float32 (N, T, 3)     frame j's mean pose to frame 0's
    /motion/frame_translation  float32 (N, T, 3)
    /motion/<per-frame value>  (N, T): window_margin_px, frame_kernel_radius_px, ...
    /params/<name>  (N,): one value per clip (the camera, the sensor, the still)

The clip settings (frames, fps, shutter angle, readout) are in the config's ``clips`` entry.
The functions return a problem's description, or None when the layout is right.

Example:
    >>> images_problem((10, 8, 64, 64, 3), (10, 8, 64, 64, 3), (10, 8, 33, 33), "uint8", "float32") is None
    True
"""

from __future__ import annotations

from typing import Any

CLIP_SCHEMA_VERSION = 3
REQUIRED_CLIP_MOTION = ("rotation", "translation", "frame_rotation", "frame_translation")
REQUIRED_CLIP_PARAMS = ("seed_index", "source_index", "gain", "noise_a", "noise_b", "jpeg_quality",
                        "exposure_s", "focal_px", "depth_m", "anchor_x", "anchor_y")


def images_problem(blurred: tuple, sharp: tuple, kernel: tuple, image_dtype: Any, kernel_dtype: Any,
                   max_side: int = 16384, max_kernel: int = 1025) -> str | None:
    """What is wrong with clip image and kernel shapes/dtypes (None: nothing)."""
    if (len(blurred) != 5 or blurred[-1] != 3 or str(image_dtype) != "uint8" or blurred[1] < 1
            or not 1 <= min(blurred[2:4]) <= max(blurred[2:4]) <= max_side):
        return f"/blurred must be uint8 (N, T, H, W, 3) with 1 <= H, W <= {max_side}, got {image_dtype} {blurred}"
    if tuple(sharp) != tuple(blurred):
        return f"/sharp {sharp} does not match /blurred {blurred}"
    if (len(kernel) != 4 or tuple(kernel[:2]) != tuple(blurred[:2]) or str(kernel_dtype) != "float32"
            or kernel[2] != kernel[3] or kernel[2] % 2 == 0 or kernel[2] > max_kernel):
        return f"/kernel must be float32 (N, T, k, k) with k odd, at most {max_kernel}, got {kernel_dtype} {kernel}"
    return None


def motion_problem(motion: Any, n: int, frames: int) -> str | None:
    """What is wrong with a clip file's ``/motion`` group (None: nothing)."""
    if motion is None:
        return "schema 3 needs the group /motion"
    missing = [name for name in REQUIRED_CLIP_MOTION if name not in motion]
    if missing:
        return "missing /motion/" + ", /motion/".join(missing)
    for name, ds in motion.items():
        if ds is None or tuple(ds.shape[:2]) != (n, frames):
            return f"/motion/{name} must hold one entry per clip and frame ({n}, {frames})"
    rotation = motion["rotation"]
    if rotation.ndim != 4 or rotation.shape[2] < 2 or rotation.shape[3] != 3:
        return f"/motion/rotation must be (N, T, K, 3), got {rotation.shape}"
    return None
