"""Camera-shake blur as a data augmentation: ``RandomCameraShake`` (a torch ``nn.Module`` for
float tensors on any device) and ``NumpyCameraShake`` (the same for HWC NumPy images).

Each image gets, with probability ``p``, its own kernel from blurgen's models (a
``blurgen.KernelConfig`` random camera shake, by default; a ``blurgen.CameraConfig`` hand-held
camera; or a ``blurgen.KernelBank`` of kernels from a file), applied in linear light (sRGB decoded,
blurred, encoded again), optionally with Poisson-Gaussian sensor noise. Kernel sizes differ per
image (each kernel is cropped to its own support); there is no one-size-per-batch restriction.

Borders: the image is reflect-padded (mirrored about its edge pixels, ``numpy.pad`` "reflect",
any width) by the kernel radius, then convolved "valid", so the output has the input's size and
no dark or wrapped edges.

Reproducible: image j of a call gets the sample index ``counter + j`` (the counter then advances
by the batch size) or ``indices[j]`` when given; all of that image's randomness (apply or not, its
kernel, noise levels, the noise itself) is a function of ``(seed, index)`` alone, computed with
counter-based hashes, never with a device's torch generator. So batch splits, devices and
worker processes give the same result (to float rounding). With a ``KernelConfig``, image index
i gets ``blurgen.random_kernels(1, seed=seed, start=i, config=config)[0]``, the kernel a dataset
made with the same seed stores at index i. Inside a DataLoader worker w of W the index is
``(counter + j) * W + w``, so workers never repeat each other's draws.

Use in pipelines::

    # torchvision v2, tensors (ToDtype(scale=True) gives float in [0, 1]):
    from torchvision.transforms import v2
    pipeline = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
                           RandomCameraShake(p=0.5, seed=0)])
    # torchvision v2 on NumPy HWC uint8 images, or any plain loop:
    shake = NumpyCameraShake(p=0.5, seed=0)
    pipeline = v2.Compose([v2.Lambda(shake), v2.ToImage()])
    blurred = shake(image_u8)                      # HWC uint8 in, HWC uint8 out
    # albumentations (Lambda passes the image and keyword arguments, which are ignored):
    import albumentations as A
    pipeline = A.Compose([A.Lambda(image=shake, p=1.0), A.HorizontalFlip()])
    # GPU batches in the training loop:
    augment = RandomCameraShake(p=0.5, seed=0, noise=True)
    batch = augment(batch.cuda())                  # (B, C, H, W) float in [0, 1]

Speed: on the CPU, float32 batches of thin kernels (camera shake) go through one fused Numba
loop per image plane (sRGB decode by table, reflect padding, a sum over the kernel's non-zero
taps, noise, encode by table); the gradient is that of the torch path, recomputed in backward.
Dense kernels and other devices use torch ops with FFT convolution. Measured (2 threads, batch
16 of 3x256x256, 65x65 kernels): ~400-850 images/s on the CPU, 7-11x kornia's RandomMotionBlur
at the same kernel size (benchmarks/bench_transforms.py).

DataLoader workers, forked or spawned, work: Numba's OpenMP thread pool is not fork-safe, so a
process forked after blurgen used it runs serial compilations of blurgen's parallel loops
(``blurgen.core._jit.ForkSafe``, same arrays). In a worker (torch runs one thread there) this module's
own loops run serially too.
For DDP, give each rank its own ``seed`` (or disjoint ``indices``).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

import numpy as np
import torch
from torch import nn

from blurgen.blur.curves import GAMMAS
from blurgen.blur.torch_stages import METHODS
from blurgen.core.config import MAX_SEED, check_index, check_number, check_pair
from blurgen.core.kernel_shape import check_kernel_values, crop_to_support
from blurgen.core.streams import TAG_EPOCH, TAG_SHAKE, check_indices, sample_bits, to_uniform
from blurgen.motion import registry
from blurgen.motion.bank import KernelBank, pad_to
from blurgen.transforms import _torch_ops as ops
from blurgen.transforms.clips import ClipSettings, shake_clips

DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.uint8)


def _check_options(gamma: Any, method: Any) -> None:
    if gamma is not None and gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS} or None, got {gamma!r}")
    if method not in (*METHODS, "taps"):  # "taps": the older word for "direct"
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")


def _common_size(kernels: list[np.ndarray]) -> np.ndarray:
    """Kernels cropped to their own support, padded (centred) to the largest: float32 (n, K, K)."""
    cropped = [crop_to_support(np.asarray(k, np.float32)) for k in kernels]
    size = max(k.shape[0] for k in cropped)
    return np.stack([pad_to(k, size) for k in cropped]).astype(np.float32)


def camera_shake(input: torch.Tensor, kernels: np.ndarray | torch.Tensor, gamma: str | None = "srgb",
                 method: str = "auto") -> torch.Tensor:
    """Blur each image of a batch with its own kernel (reflect borders, output = input size).

    Args:
        input: float ``(B, C, H, W)`` in [0, 1] (any device; float16/bfloat16 are computed in
            float32).
        kernels: float ``(B, k, k)``, k odd, non-negative, sum 1 (NumPy or a tensor); each is
            cropped to its support first, so a large, mostly empty array costs nothing extra.
            Weights that are NaN, infinite, negative, complex or not numbers, or a kernel whose
            sum is not positive, raise ``ValueError``.
        gamma: ``"srgb"`` or ``"2.2"`` to blur in linear light (decode, blur, clip, encode),
            ``None`` to blur the values as they are.
        method: ``"auto"``, ``"direct"`` (CPU float32; ``"taps"`` is accepted for it) or
            ``"fft"``; the dataset's rule (``blurgen.blur.torch_stages.pick_method``).

    Returns:
        ``(B, C, H, W)``, the input's dtype and device, in [0, 1]; differentiable in ``input``.

    Example:
        >>> x = torch.rand(2, 3, 17, 19)
        >>> delta = np.zeros((2, 5, 5), np.float32); delta[:, 2, 2] = 1
        >>> bool(torch.allclose(camera_shake(x, delta, gamma=None), x))
        True
    """
    x, _ = _as_batch(input)
    _check_options(gamma, method)
    _check_range(x, gamma)
    k = kernels.detach().cpu().numpy() if isinstance(kernels, torch.Tensor) else np.asarray(kernels)
    square_odd = k.ndim == 3 and k.shape[1] == k.shape[2] and k.shape[1] % 2 == 1
    if input.ndim != 4 or not square_odd or k.shape[0] != input.shape[0]:
        raise ValueError(f"input must be (B, C, H, W) and kernels (B, k, k) with the same B and k odd, "
                         f"got {tuple(input.shape)} and {k.shape}")
    return _blur(x, _common_size(list(check_kernel_values(k))), gamma, method, None)


def _blur(x: torch.Tensor, kernels: np.ndarray, gamma: str | None, method: str,
          noise: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> torch.Tensor:
    """The blur on ``(n, C, H, W)`` images with ``(n, K, K)`` kernels, computed in float32
    (float64 kept; uint8 as value / 255), returned in the input's dtype (uint8 rounded)."""
    if x.dtype == torch.uint8:
        out = ops.blur(x.float() / 255.0, kernels, gamma, method, noise)
        return (out * 255.0).round_().clamp_(0, 255).to(torch.uint8)
    work = x if x.dtype == torch.float64 else x.float()
    return ops.blur(work, kernels, gamma, method, noise).to(x.dtype)


def _check_range(x: torch.Tensor, gamma: str | None) -> None:
    """With a transfer curve the values are encoded light levels in [0, 1]: anything else (a
    normalised batch, NaN) is refused rather than silently clipped. Without one, any finite value
    passes."""
    if x.dtype == torch.uint8 or not x.numel():
        return
    low, high = (float(v) for v in torch.aminmax(x.detach()))  # one pass; NaN propagates into both
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("input holds NaN or infinite values")
    if gamma is not None and (low < 0.0 or high > 1.0):
        raise ValueError(f"with gamma={gamma!r} the input must be in [0, 1] (encoded light levels), got values in "
                         f"[{low:.3g}, {high:.3g}]; use gamma=None for normalised tensors")


def _check_pipeline(pipeline: Any, isp: Any, gamma: Any) -> tuple[str, Any]:
    from blurgen.blur.isp import IspConfig, check_pipeline

    check_pipeline(pipeline)
    isp = IspConfig() if isp is None else isp
    if not isinstance(isp, IspConfig):
        raise ValueError(f"isp must be a blurgen.blur.isp.IspConfig, got {type(isp).__name__}")
    if pipeline == "camera" and gamma is None:
        raise ValueError("pipeline='camera' needs gamma 'srgb' or '2.2', got None")
    return pipeline, isp


def _worker_slot() -> tuple[int, int]:
    """(worker id, worker count) inside a torch DataLoader worker, else (0, 1)."""
    info = torch.utils.data.get_worker_info()
    return (0, 1) if info is None else (info.id, info.num_workers)


def _as_batch(input: Any) -> tuple[torch.Tensor, bool]:
    """A validated ``(B, C, H, W)`` float tensor and whether the input was ``(C, H, W)``."""
    if not isinstance(input, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, got {type(input).__name__}")
    if input.dtype not in DTYPES:
        raise TypeError(f"input must be float32, float16, bfloat16, float64 or uint8, got {input.dtype}")
    if input.is_meta:  # torch's own error came from deep inside: "Tensor.item() cannot be called..."
        raise ValueError("input is a meta tensor (a shape without values); give it values on a real device "
                         "(e.g. torch.empty_like(x, device='cpu'))")
    if input.ndim not in (3, 4) or min(input.shape[-2:], default=0) < 1:
        raise ValueError(f"input must be (B, C, H, W) or (C, H, W) with H, W >= 1 (or clips (B, T, C, H, W)), "
                         f"got {tuple(input.shape)}")
    return (input[None], True) if input.ndim == 3 else (input, False)


class RandomCameraShake(nn.Module):
    r"""Blur each image, with probability ``p``, by its own random camera-shake kernel.

    Args:
        config: the motion model's settings: a ``blurgen.KernelConfig`` (default
            ``KernelConfig()``: 65x65 kernels, 60 px random shake paths), a
            ``blurgen.CameraConfig`` or a ``blurgen.KernelBank``.
        bank: a ``blurgen.KernelBank`` to draw kernels from (the same as ``config=bank``).
        motion: a motion model name or instance (``blurgen.motion.registry``) for settings whose
            class several models share; default: the model of ``config``.
        p: probability in [0, 1] that an image is blurred (the others are returned unchanged).
        gamma: ``"srgb"`` (default) or ``"2.2"``: blur in linear light, as a camera integrates
            light (the input must then be encoded levels in [0, 1]: anything else raises
            ``ValueError`` instead of being clipped); ``None``: blur the values as they are, any
            finite values (a batch after ``Normalize``), nothing clipped.
        noise: add sensor noise after the blur, variance ``a * x + b`` in linear light (the
            Poisson-Gaussian approximation), ``a`` and ``b`` drawn uniformly per image from
            ``noise_a`` (in [0, 0.1]) and ``noise_b`` (in [0, 0.01]).
        seed: non-negative int; ``None`` draws one (stored in ``self.seed``).
        method: convolution, ``"auto"`` (direct sparse taps on CPU for thin kernels, FFT otherwise),
            ``"direct"`` (``"taps"`` is accepted for it) or ``"fft"``.
        pipeline: ``"srgb"`` (default: blur and noise in linear sRGB, as above) or ``"camera"``:
            the dataset's camera pipeline (``blurgen.blur.raw``: unprocess into a camera's RAW with
            a drawn colour matrix and gains, light sources above the clip, blur, Bayer mosaic,
            RAW noise with calibrated shot/read levels (``noise=True``; ``noise_a``/``noise_b``
            do not apply), quantisation, bilinear demosaicing, back to sRGB with the tone curve).
            Needs 3 channels and a ``gamma``; Numba on float32 CPU tensors without gradient, its
            torch twin otherwise (the same values).
        isp: the camera pipeline's settings (``blurgen.blur.isp.IspConfig``; default ``IspConfig()``).
        fps, shutter_angle, clip_mode: clips only (``(B, T, C, H, W)`` input, a ``CameraConfig``):
            frames per second, shutter angle in degrees, ``"blur"`` or ``"move"``
            (``blurgen.transforms.clips``: one camera trajectory per clip).
        blur_length_px: ``(low, high)`` set on the config (``KernelConfig.blur_length_px`` or
            ``CameraConfig.blur_length_px``).

    Shape:
        - Input: :math:`(B, C, H, W)` or :math:`(C, H, W)`, float32/float16/bfloat16/float64 in
          [0, 1] (any finite values with ``gamma=None``), or uint8 (levels / 255), any device;
          or clips :math:`(B, T, C, H, W)` (``blurgen.transforms.clips``).
        - Output: the same shape, dtype and device; differentiable in a float input.

    Epochs: ``set_epoch(epoch)`` keys every draw on the epoch too (see its docstring), so a
    DataLoader whose workers restart each epoch does not repeat the same blur.

    ``forward(input, indices=None, return_params=False)``: ``indices`` (B ints) fix the sample
    index of each image (the counter is then left alone); ``return_params=True`` also returns a
    dict of CPU tensors: ``index`` (B,) int64, ``applied`` (B,) bool, ``kernels`` (B, K, K)
    float32 (each centred, zero-padded to the batch's largest; a delta where not applied),
    ``kernel_size`` (B,) int64 (side of each kernel's support), ``noise_a``, ``noise_b`` (B,)
    float32 (0 without noise), and ``kernel_params``: the model's or bank's draws, (B, ...) each
    (0 where not applied).

    Example:
        >>> shake = RandomCameraShake(p=1.0, seed=0)
        >>> x = torch.rand(2, 3, 33, 31)
        >>> y, params = shake(x, return_params=True)
        >>> y.shape, y.dtype, params["index"].tolist(), shake.counter
        (torch.Size([2, 3, 33, 31]), torch.float32, [0, 1], 2)
        >>> bool(torch.equal(shake(x, indices=[0, 1]), y))
        True
    """

    def __init__(self, config: Any = None, *, bank: KernelBank | None = None, motion: Any = None, p: float = 0.5,
                 gamma: str | None = "srgb", noise: bool = False,
                 noise_a: tuple[float, float] = (1e-4, 1e-3), noise_b: tuple[float, float] = (1e-7, 1e-6),
                 seed: int | None = None, method: str = "auto", pipeline: str = "srgb", isp: Any = None,
                 fps: float = 30.0, shutter_angle: float = 180.0, clip_mode: str = "blur",
                 blur_length_px: tuple[float, float] | None = None) -> None:
        super().__init__()
        if bank is not None and config is not None:
            raise ValueError("give config or bank, not both")
        if bank is not None and not isinstance(bank, KernelBank):
            raise ValueError(f"bank must be a blurgen.KernelBank, got {type(bank).__name__}")
        self.bank = bank if bank is not None else config if isinstance(config, KernelBank) else None
        settings = self.bank if self.bank is not None else config
        self.model = registry.get(motion) if motion is not None else registry.for_config(settings)
        self.config = settings if settings is not None else self.model.config_type()
        if not isinstance(self.config, self.model.config_type):
            raise ValueError(f"config must be a {self.model.config_type.__name__} for motion {self.model.name}, "
                             f"got {type(self.config).__name__}")
        if blur_length_px is not None:  # the config's own field
            if not hasattr(self.config, "blur_length_px"):
                raise ValueError(f"blur_length_px does not apply to motion {self.model.name} (its settings have no "
                                 "blur length)")
            self.config = self.config.replace(blur_length_px=blur_length_px)
        self.p = check_number("p", p, 0.0, 1.0)
        _check_options(gamma, method)
        self.gamma, self.method = gamma, method
        if not isinstance(noise, (bool, np.bool_)):
            raise ValueError(f"noise must be True or False, got {noise!r}")
        self.noise = bool(noise)
        self.noise_a = check_pair("noise_a", noise_a, 0.0, 0.1)
        self.noise_b = check_pair("noise_b", noise_b, 0.0, 0.01)
        self.seed = secrets.randbits(62) if seed is None else check_index("seed", seed, 0)
        self.counter = 0
        self.epoch = 0
        self.pipeline, self.isp = _check_pipeline(pipeline, isp, gamma)
        self.clip = ClipSettings(fps, shutter_angle, clip_mode)

    def extra_repr(self) -> str:
        source = repr(self.config)
        return (f"p={self.p}, gamma={self.gamma!r}, noise={self.noise}, pipeline={self.pipeline!r}, seed={self.seed}, "
                f"counter={self.counter}, epoch={self.epoch}, kernels={source}")

    def get_extra_state(self) -> dict[str, int]:
        """``seed``, ``counter`` and ``epoch`` go into ``state_dict()``, so a checkpoint resumes
        the stream."""
        return {"seed": self.seed, "counter": self.counter, "epoch": self.epoch}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.seed = check_index("seed", state["seed"], 0)
        self.counter = check_index("counter", state["counter"], 0)
        self.epoch = check_index("epoch", state.get("epoch", 0), 0)

    def set_epoch(self, epoch: int) -> None:
        """Draw epoch ``epoch``'s blur: image index i of epoch e > 0 uses the stream seed
        ``stream_seed`` derived from (seed, e) (epoch 0 is ``seed`` itself), so epochs differ and
        each is reproducible. With DataLoader workers that are not persistent, call it on the
        transform in the main process before iterating each epoch: every epoch's workers get a
        fresh copy of it (with the counter at 0, which without an epoch would repeat the last
        epoch's blur exactly)."""
        self.epoch = check_index("epoch", epoch, 0)

    @property
    def stream_seed(self) -> int:
        """The seed this epoch's draws use: ``seed`` at epoch 0, else one derived from
        (seed, epoch)."""
        if self.epoch == 0:
            return self.seed
        return int(sample_bits(self.seed, [self.epoch], TAG_EPOCH, 1)[0, 0] >> np.uint64(2))

    def next_indices(self, n: int) -> np.ndarray:
        """Sample indices of the next ``n`` images from the counter (which advances by n)."""
        worker, workers = _worker_slot()
        if (self.counter + n) * workers > MAX_SEED:
            raise ValueError(f"the sample counter passed {MAX_SEED}; set .counter lower")
        out = (self.counter + np.arange(n, dtype=np.int64)) * workers + worker
        self.counter += n
        return out

    def draw(self, indices) -> dict[str, np.ndarray]:
        """The per-image draws of samples ``indices``: ``applied`` (bool), ``noise_a``,
        ``noise_b`` (float32; 0 where off), ``noise_key`` (uint64 (n, 2), 32-bit halves)."""
        bits = sample_bits(self.stream_seed, indices, TAG_SHAKE, 4)
        u = to_uniform(bits[:, :3])
        on = self.noise
        (a_lo, a_hi), (b_lo, b_hi) = self.noise_a, self.noise_b
        return {
            "applied": u[:, 0] < self.p,
            "noise_a": (a_lo + (a_hi - a_lo) * u[:, 1]).astype(np.float32) * on,
            "noise_b": (b_lo + (b_hi - b_lo) * u[:, 2]).astype(np.float32) * on,
            "noise_key": np.stack([bits[:, 3] & np.uint64(0xFFFFFFFF), bits[:, 3] >> np.uint64(32)], axis=1),
        }

    def _camera(self, x: torch.Tensor, kernels: np.ndarray, indices: np.ndarray, draws: dict,
                chosen: np.ndarray) -> torch.Tensor:
        """The camera pipeline on the chosen images; their noise levels go into ``draws``."""
        from blurgen.transforms import _camera

        if x.shape[1] != 3:
            raise ValueError(f"pipeline='camera' needs 3 channels (RGB), got {x.shape[1]}")
        p = _camera.draw(self.stream_seed, indices, self.gamma, self.noise, self.isp)
        draws["noise_a"], draws["noise_b"] = draws["noise_a"].copy(), draws["noise_b"].copy()
        draws["noise_a"][chosen], draws["noise_b"][chosen] = p["noise_a"], p["noise_b"]
        return _camera.camera(x, kernels, p, self.gamma, self.noise, self.isp, self.method)

    def kernels_for(self, indices) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
        """The kernels (float32, odd sides) and model/bank parameters of samples ``indices``."""
        return self.model.kernels_at(self.config, self.stream_seed, check_indices(indices))

    def plan(self, n: int, indices=None) -> tuple[np.ndarray, dict, np.ndarray, np.ndarray, dict, tuple | None]:
        """What a call on ``n`` images does: ``(indices, draws, chosen, kernels, model params,
        noise)``; ``chosen`` are the positions blurred, ``kernels`` theirs (common size)."""
        if indices is None:
            idx = self.next_indices(n)
        else:
            idx = check_indices(indices)
            if idx.size != n:
                raise ValueError(f"indices must give one index per image ({n}), got {idx.size}")
        draws = self.draw(idx)
        chosen = np.flatnonzero(draws["applied"])
        kernels, model_params, noise = np.ones((0, 1, 1), np.float32), {}, None
        if chosen.size:
            raw, model_params = self.kernels_for(idx[chosen])
            kernels = _common_size(raw)
            if self.noise:
                noise = (draws["noise_a"][chosen], draws["noise_b"][chosen], draws["noise_key"][chosen])
        return idx, draws, chosen, kernels, model_params, noise

    def forward(self, input: torch.Tensor, indices=None, return_params: bool = False):
        if isinstance(input, torch.Tensor) and input.ndim == 5:
            _check_range(_as_batch(input.flatten(0, 1))[0], self.gamma)  # dtype, sides, values
            return shake_clips(self, input, indices, return_params, _blur, _common_size)
        x, single = _as_batch(input)
        _check_range(x, self.gamma)
        idx, draws, chosen, kernels, model_params, noise = self.plan(x.shape[0], indices)
        out = x
        if chosen.size:
            subset = x[chosen] if chosen.size < len(idx) else x
            if self.pipeline == "camera":
                blurred = self._camera(subset, kernels, idx[chosen], draws, chosen)
            else:
                blurred = _blur(subset, kernels, self.gamma, self.method, noise)
            out = blurred if chosen.size == len(idx) else x.index_copy(
                0, torch.as_tensor(chosen, device=x.device), blurred)
        out = out[0] if single else out
        if not return_params:
            return out
        return out, _params(idx, draws, chosen, kernels, model_params)


def _params(idx: np.ndarray, draws: dict, chosen: np.ndarray, kernels: np.ndarray, model: dict) -> dict:
    """The ``return_params`` dict (see ``RandomCameraShake``), full-batch CPU tensors."""
    n, size = len(idx), kernels.shape[-1]
    full = np.zeros((n, size, size), np.float32)
    full[:, size // 2, size // 2] = 1.0
    full[chosen] = kernels
    sides = np.ones(n, np.int64)
    sides[chosen] = [crop_to_support(k).shape[0] for k in kernels]
    extra = {}
    for name, values in model.items():
        column = np.zeros((n, *values.shape[1:]), values.dtype)
        column[chosen] = values
        extra[name] = torch.from_numpy(column)
    return {"index": torch.from_numpy(idx), "applied": torch.from_numpy(draws["applied"]),
            "kernels": torch.from_numpy(full), "kernel_size": torch.from_numpy(sides),
            "noise_a": torch.from_numpy(draws["noise_a"] * draws["applied"]),
            "noise_b": torch.from_numpy(draws["noise_b"] * draws["applied"]), "kernel_params": extra}


def _dataset_stages(img: np.ndarray, kernel: np.ndarray, gamma: str) -> np.ndarray:
    """One uint8 HWC image through the dataset's own camera stages (``blurgen.blur``): decode by
    table, reflect padding (``numpy.pad`` "reflect", any width), valid convolution by the
    dataset's rule, clip and encode; the fastest path for single NumPy images."""
    import cv2

    from blurgen.blur.convolve import convolve_valid
    from blurgen.blur.curves import linear_to_srgb, srgb_to_linear

    kernel = crop_to_support(kernel)
    r = kernel.shape[0] // 2
    lin = srgb_to_linear(img, gamma)
    padded = cv2.copyMakeBorder(lin, r, r, r, r, cv2.BORDER_REFLECT_101) if r else lin
    return linear_to_srgb(convolve_valid(padded.reshape(*padded.shape[:2], -1), kernel).reshape(img.shape), gamma)


class NumpyCameraShake:
    """``RandomCameraShake`` for NumPy images: HWC (or HW) ``uint8``, or ``float32`` in [0, 1].

    Takes the same keyword arguments as ``RandomCameraShake`` and gives the same result (rounded
    to uint8 for uint8 images). Picklable, so it works in DataLoader workers (each worker draws
    its own samples, see the module docstring); it computes on the CPU with torch's thread count
    (1 in a DataLoader worker).

    ``__call__(image, index=None, **ignored)``: ``index`` fixes the image's sample index (e.g. a
    dataset index, for per-sample reproducibility); other keyword arguments (as
    ``albumentations.Lambda`` passes) are ignored.

    Example:
        >>> shake = NumpyCameraShake(p=1.0, seed=0)
        >>> img = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        >>> out = shake(img)
        >>> out.shape, out.dtype.name, shake.transform.counter
        ((40, 50, 3), 'uint8', 1)
        >>> bool((shake(img, index=0) == out).all())
        True
    """

    def __init__(self, config: Any = None, **options: Any) -> None:
        self.transform = RandomCameraShake(config, **options)

    def __repr__(self) -> str:
        return f"NumpyCameraShake({self.transform.extra_repr()})"

    def __call__(self, image: np.ndarray, index: int | None = None, **_ignored: Any) -> np.ndarray:
        img = np.asarray(image)
        if img.dtype not in (np.uint8, np.float32) or img.ndim not in (2, 3):
            raise ValueError(f"image must be (H, W) or (H, W, C) uint8 or float32, got {img.shape} {img.dtype}")
        t = self.transform
        if t.pipeline == "camera":
            return self._through_the_module(img, index)
        if img.dtype == np.float32:
            _check_range(torch.from_numpy(img), t.gamma)
        _, _, chosen, kernels, _, noise = t.plan(1, None if index is None else [index])
        if not chosen.size:
            return img.copy()
        if img.dtype == np.uint8 and t.gamma and noise is None:
            return _dataset_stages(img, kernels[0], t.gamma)
        planes = np.ascontiguousarray(np.moveaxis(img.reshape(*img.shape[:2], -1), -1, 0), dtype=np.float32)
        if img.dtype == np.uint8:
            planes *= np.float32(1 / 255)
        if t.gamma and ops.fused_ok(torch.empty(0), kernels, t.method):  # no torch on this path
            out = ops.blur_planes(planes, kernels, t.gamma, noise, torch.get_num_threads())
        else:
            with torch.no_grad():
                out = _blur(torch.from_numpy(planes)[None], kernels, t.gamma, t.method, noise)[0].numpy()
        out = np.moveaxis(out, 0, -1).reshape(img.shape)
        if img.dtype == np.uint8:
            return np.clip(np.rint(out * np.float32(255)), 0, 255).astype(np.uint8)
        return out

    def _through_the_module(self, img: np.ndarray, index: int | None) -> np.ndarray:
        """The image through ``RandomCameraShake.forward`` as a (C, H, W) tensor."""
        chw = torch.from_numpy(np.ascontiguousarray(img.reshape(*img.shape[:2], -1).transpose(2, 0, 1)))
        with torch.no_grad():
            y = self.transform(chw, indices=None if index is None else [index])
        return y.permute(1, 2, 0).reshape(img.shape).contiguous().numpy()
