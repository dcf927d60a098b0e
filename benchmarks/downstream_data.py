"""The downstream benchmark's data: training pairs per recipe, and the real test it is scored on.

Training pairs come from ``blurgen make`` itself (a recipe is a string of its options), all from
the same sharp source, size, kernel size and seed: sample i's sharp crop and its gain/noise draws
depend on ``(seed, i)`` only, so recipes differ in the blur alone (checked by a test). Two
recipes blur with kernels from outside the walk, through ``--kernels`` (a kernel bank): straight
lines (what albumentations' MotionBlur draws) and the plain reference of the DeblurGAN
generator's walk (``blurgen.reference.walk``), each kernel centred on its centroid.

Real test: Köhler et al. 2012 (real recorded hand shake played back by a robot): 4 scenes x 12
blurred 800x800 shots and one sharp frame per scene (public JPEG copies at quality 50; the sharp
frame is 0-12 px off and exposed differently, so this approximates Köhler's protocol, which
compares with every frame of the recorded trajectory). Scored on the central ``crop`` x ``crop``
after the best global integer shift (+-``max_shift`` px; both per downscaling factor in ``GEOMETRY``) and intensity gain/offset (least squares,
one pair for all channels) between the restored crop and the sharp frame.
"""

from __future__ import annotations

import os
import shlex

import numpy as np
from scipy.signal import fftconvolve

#: Per downscaling factor of the test images: side of the scored centre, px, the context restored
#: around it, and the largest shift searched (the sharp frame is up to 12 px off at full size).
GEOMETRY = {1: (224, 32, 12), 2: (256, 32, 8), 4: (160, 16, 6)}
#: The photographs scikit-image installs with itself (public domain / CC0, no download): a
#: natural-image training source equal for every recipe.
SKIMAGE_PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                  "motorcycle_right.png")
BANK_KERNELS, BANK_SEED = 400, 10_000


def line_kernels(n: int, size: int, seed: int, max_len: float = 45.0) -> np.ndarray:
    """Straight-line kernels (albumentations' MotionBlur): length U(3, max_len) px, angle U(0, pi)."""
    from blurgen import rasterize

    rng = np.random.default_rng([seed, 1])
    lengths, angles = rng.uniform(3.0, max_len, n), rng.uniform(0.0, np.pi, n)
    t = np.linspace(0.0, 1.0, 256)[None, :]
    xy = np.stack([lengths[:, None] * np.cos(angles)[:, None] * t, lengths[:, None] * np.sin(angles)[:, None] * t], -1)
    return rasterize(xy.astype(np.float32), size=size)


def deblurgan_kernels(n: int, size: int, seed: int) -> np.ndarray:
    """The plain reference of the DeblurGAN generator's walk, its recipe's exposure mix (0.1, 0.5, 1)."""
    from blurgen.core.config import KernelConfig
    from blurgen.reference.walk import reference_kernel

    config = KernelConfig(size=size, exposures=(0.1, 0.5, 1.0))
    return np.stack([reference_kernel(seed, i, config)[0] for i in range(n)])


BANKS = {"lines": line_kernels, "deblurgan": deblurgan_kernels}


def bank_path(cache: str, name: str, size: int) -> str:
    """A cached kernel bank ``.npy`` (made once; ``{bank:NAME}`` in a recipe names it)."""
    path = os.path.join(cache, f"bank_{name}_{size}.npy")
    if not os.path.exists(path):
        kernels = BANKS[name](BANK_KERNELS, size, BANK_SEED)
        np.save(path + ".tmp.npy", kernels)
        os.replace(path + ".tmp.npy", path)
    return path


def skimage_folder(cache: str) -> str:
    """A folder of ``SKIMAGE_PHOTOS`` (copied once; ``{skimage}`` in options names it)."""
    import shutil

    import skimage.data

    folder = os.path.join(cache, "skimage_photos")
    if not os.path.isdir(folder):
        os.makedirs(folder + ".tmp", exist_ok=True)
        base = os.path.dirname(skimage.data.__file__)
        for name in SKIMAGE_PHOTOS:
            shutil.copy(os.path.join(base, name), os.path.join(folder + ".tmp", name))
        os.replace(folder + ".tmp", folder)
    return folder


def recipe_args(recipe: str, cache: str, kernel_size: int) -> list[str]:
    """A recipe's ``blurgen make`` options, ``{bank:NAME}`` replaced by the bank's file and
    ``{skimage}`` by the scikit-image photo folder."""
    args = shlex.split(recipe)
    for name in BANKS:
        args = [bank_path(cache, name, kernel_size) if a == "{bank:%s}" % name else a for a in args]
    return [skimage_folder(cache) if a == "{skimage}" else a for a in args]


def make_pairs(recipe: str, out: str, n: int, side: int, seed: int, cache: str, kernel_size: int = 65) -> dict:
    """``blurgen make`` the recipe's ``n`` pairs (dead leaves, ``side`` px, ``seed``) into ``out``
    (reused when it exists); returns ``blurred``, ``sharp`` (uint8) and ``params``."""
    from click.testing import CliRunner

    import blurgen
    from blurgen.cli import main

    if not os.path.exists(out):
        args = ["make", "--n", str(n), "--out", out, "--size", str(side), "--seed", str(seed), "--workers", "1",
                "--kernel-size", str(kernel_size), *recipe_args(recipe, cache, kernel_size)]
        result = CliRunner().invoke(main, args)
        if result.exit_code != 0:
            raise RuntimeError(f"blurgen {shlex.join(args)} failed: {result.output}")
    with blurgen.read_pairs(out) as pairs:
        items = [pairs[i] for i in range(len(pairs))]
        params = dict(pairs.params)
    return {"blurred": np.stack([b for b, _, _ in items]), "sharp": np.stack([s for _, s, _ in items]),
            "params": params}


def load_kohler(root: str, scenes: tuple[int, ...], trajectories: tuple[int, ...] = tuple(range(1, 13)),
                scale: int = 1) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, blurred context crop, sharp frame)`` per shot of ``scenes`` x ``trajectories``
    (RGB uint8), every image first downscaled ``scale`` times (area average)."""
    import cv2

    crop, context, _ = GEOMETRY[scale]

    def read(name: str) -> np.ndarray:
        image = cv2.imread(os.path.join(root, name), cv2.IMREAD_COLOR)
        if image is None:
            raise FileNotFoundError(f"{os.path.join(root, name)} is missing or unreadable")
        if scale > 1:
            image = cv2.resize(image, (image.shape[1] // scale, image.shape[0] // scale), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    shots = []
    for scene in scenes:
        sharp = read(f"GroundTruth{scene}.jpg")
        for trajectory in trajectories:
            blurred = read(f"Blurry{scene}_{trajectory}.jpg")
            shots.append((f"{scene}_{trajectory}", centre(blurred, crop + 2 * context), sharp))
    return shots


def centre(image: np.ndarray, side: int) -> np.ndarray:
    y, x = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
    return image[y:y + side, x:x + side]


def _box_sums(image: np.ndarray, side: int) -> np.ndarray:
    """Sums of ``image`` (H, W) over every ``side`` x ``side`` window (valid positions)."""
    c = np.pad(image.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    return c[side:, side:] - c[:-side, side:] - c[side:, :-side] + c[:-side, :-side]


def aligned_score(restored: np.ndarray, sharp: np.ndarray, scale: int = 1) -> tuple[float, float]:
    """PSNR and SSIM (uint8, data range 255) of the ``crop`` x ``crop`` centre of ``restored``
    (the centre crop of a frame of ``sharp``'s size) against ``sharp`` after the best integer
    shift within +-``max_shift`` px and gain/offset fitted by least squares (one for all
    channels); ``crop`` and ``max_shift`` from ``GEOMETRY[scale]``."""
    from skimage.metrics import structural_similarity

    crop, _, max_shift = GEOMETRY[scale]
    x = centre(restored, crop).astype(np.float64)
    region = centre(sharp, crop + 2 * max_shift).astype(np.float64)
    n = x.size
    sx, sxx = x.sum(), (x * x).sum()
    sy = sum(_box_sums(region[..., c], crop) for c in range(3))
    syy = sum(_box_sums(region[..., c] ** 2, crop) for c in range(3))
    sxy = sum(fftconvolve(region[..., c], x[::-1, ::-1, c], mode="valid") for c in range(3))
    vxx, vyy, vxy = sxx - sx * sx / n, syy - sy * sy / n, sxy - sx * sy / n
    sse = np.maximum(vyy - vxy ** 2 / vxx, 1e-9)
    dy, dx = np.unravel_index(int(np.argmin(sse)), sse.shape)
    gain = vxy[dy, dx] / vxx
    offset = (sy[dy, dx] - gain * sx) / n
    fitted = np.clip(np.round(gain * x + offset), 0, 255).astype(np.uint8)
    target = region[dy:dy + crop, dx:dx + crop].astype(np.uint8)
    mse = np.mean((fitted.astype(np.float64) - target) ** 2)
    ssim = structural_similarity(fitted, target, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255, channel_axis=-1)
    return float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), float(ssim)
