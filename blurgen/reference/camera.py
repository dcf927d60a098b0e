"""Brute-force references of the camera model: the test oracle and the accuracy yardstick.

Plain NumPy, written straight from the definitions and sharing no code with the Numba kernels:
every output pixel follows its own path, re-projected through the full homography at many
instants per knot interval (rotation vectors interpolated linearly between knots), centred on its
own time mean, and the sharp image is sampled there bilinearly. Slow on purpose.
"""

from __future__ import annotations

import numpy as np

from blurgen.camera.motion import CameraMotion


def rodrigues(r: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(..., 3, 3)`` of rotation vectors ``r`` ``(..., 3)``."""
    r = np.asarray(r, np.float64)
    theta = np.linalg.norm(r, axis=-1)[..., None, None]
    k = np.zeros((*r.shape[:-1], 3, 3))
    k[..., 0, 1], k[..., 0, 2], k[..., 1, 2] = -r[..., 2], r[..., 1], -r[..., 0]
    k[..., 1, 0], k[..., 2, 0], k[..., 2, 1] = r[..., 2], -r[..., 1], r[..., 0]
    safe = np.where(theta == 0, 1.0, theta)
    a = np.where(theta == 0, 1.0, np.sin(safe) / safe)
    b = np.where(theta == 0, 0.5, (1.0 - np.cos(safe)) / safe ** 2)
    return np.eye(3) + a * k + b * (k @ k)


def fine_poses(motion: CameraMotion, substeps: int) -> tuple[np.ndarray, np.ndarray]:
    """Rotations ``(T, 3, 3)`` and camera centres ``(T, 3)`` of sample 0 at the midpoints of
    ``substeps`` equal parts of every knot interval (T = (S - 1) * substeps)."""
    rot = motion.rotation[0].astype(np.float64)
    trans = motion.translation[0].astype(np.float64)
    a = ((np.arange(substeps) + 0.5) / substeps)[None, :, None]
    r = (1 - a) * rot[:-1, None] + a * rot[1:, None]
    t = (1 - a) * trans[:-1, None] + a * trans[1:, None]
    return rodrigues(r.reshape(-1, 3)), t.reshape(-1, 3)


def offsets(motion: CameraMotion, x: np.ndarray, y: np.ndarray, rotation: np.ndarray, centre: np.ndarray) -> tuple:
    """Offsets ``x - s`` (dx, dy) of frame pixels (x, y) for one pose (sample 0)."""
    width, height = motion.frame_size
    f = float(motion.focal_px[0])
    inv_depth = 1.0 / float(motion.depth_m[0])
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    u, v = (x - cx) / f, (y - cy) / f
    w = rotation @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    scale = (1.0 - centre[2] * inv_depth) / w[2]
    sx = cx + f * (centre[0] * inv_depth + scale * w[0])
    sy = cy + f * (centre[1] * inv_depth + scale * w[1])
    return x - sx.reshape(x.shape), y - sy.reshape(y.shape)


def bilinear(image: np.ndarray, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """``image`` (H, W, C) float64 sampled at (px, py) (inside the image)."""
    ix, iy = np.floor(px).astype(int), np.floor(py).astype(int)
    u, v = (px - ix)[..., None], (py - iy)[..., None]
    return ((1 - u) * (1 - v) * image[iy, ix] + u * (1 - v) * image[iy, ix + 1]
            + (1 - u) * v * image[iy + 1, ix] + u * v * image[iy + 1, ix + 1])


def brute_force_blur(crop: np.ndarray, motion: CameraMotion, width: int, height: int, origin: tuple[int, int],
                     margin: int, substeps: int = 8) -> np.ndarray:
    """float64 ``(height, width, 3)`` blur of sample 0 of ``motion``; ``crop`` is the sharp
    ``(height + 2 margin, width + 2 margin, 3)`` window whose centre sits at ``origin``."""
    image = np.asarray(crop, np.float64)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    fx, fy = xs + origin[0], ys + origin[1]
    rotations, centres = fine_poses(motion, substeps)
    mean_x = np.zeros_like(xs)
    mean_y = np.zeros_like(xs)
    for r, c in zip(rotations, centres):
        dx, dy = offsets(motion, fx, fy, r, c)
        mean_x += dx
        mean_y += dy
    mean_x /= len(rotations)
    mean_y /= len(rotations)
    out = np.zeros((height, width, image.shape[2]))
    for r, c in zip(rotations, centres):
        dx, dy = offsets(motion, fx, fy, r, c)
        out += bilinear(image, xs + margin - (dx - mean_x), ys + margin - (dy - mean_y))
    return out / len(rotations)


def brute_force_kernel(motion: CameraMotion, x: float, y: float, size: int, substeps: int = 64) -> np.ndarray:
    """float64 ``(size, size)`` local kernel of sample 0 at frame pixel (x, y): its fine path,
    centred on its own mean, splatted bilinearly point by point."""
    rotations, centres = fine_poses(motion, substeps)
    d = np.array([[v.item() for v in offsets(motion, np.array([[x]]), np.array([[y]]), r, c)]
                  for r, c in zip(rotations, centres)])
    p = d - d.mean(axis=0) + (size - 1) / 2.0
    k = np.zeros((size, size))
    ix, iy = np.floor(p[:, 0]).astype(int), np.floor(p[:, 1]).astype(int)
    u, v = p[:, 0] - ix, p[:, 1] - iy
    for dy, dx, w in ((0, 0, (1 - u) * (1 - v)), (0, 1, u * (1 - v)), (1, 0, (1 - u) * v), (1, 1, u * v)):
        np.add.at(k, (iy + dy, ix + dx), w)
    return k / len(p)
