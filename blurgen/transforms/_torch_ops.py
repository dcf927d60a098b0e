"""Torch operations behind ``blurgen.transforms``: sRGB curves, reflect padding of any width,
batched valid convolution with one kernel per sample (sparse taps in Numba on the CPU, FFT
elsewhere), and counter-based Gaussian noise that is the same on every device.

Imported only by ``blurgen.transforms`` (torch stays out of ``import blurgen``).
"""

from __future__ import annotations

import contextlib

import numba
import numpy as np
import torch
import torch.nn.functional as F

from blurgen.blur.torch_stages import add_noise as noise_stage
from blurgen.blur.torch_stages import convolve_fft, decode_curve, encode_curve, pick_method
from blurgen.core._jit import may_use_pool
from blurgen.transforms import _fused_jit as jit

# The direct/FFT rule is the dataset's (blur.convolve.DIRECT_MAX_TAPS taps; blur.torch_stages).
# Measured for the augmentation (batch 16 of 3x256x256, linear light, 2 threads, 2026-12-04, dense
# square kernels of n taps): fused taps 18 ms at 81 taps, 27 ms at 225, 37 ms at 441, 47 ms at 625,
# 70 ms at 961, 275 ms at 4225; the FFT path 39-54 ms whatever the kernel: they cross near 600
# taps, so the dataset's 400 costs at most ~10 ms per batch on kernels of 400-600 taps. A 65x65
# camera-shake kernel has ~60-170 taps. A dense grouped conv2d ran at 104-230 images/s against the
# FFT's 233-286 and the fused loop's 644-844 (benchmarks/bench_transforms.py): never used.


# --------------------------------------------------------------------------------------------
# Transfer curves (differentiable; the pow branches are clamped so their gradient stays finite)


# --------------------------------------------------------------------------------------------
# Reflect padding


def reflect_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Source index of each of ``n + 2 * pad`` padded positions under reflection about the edge
    pixels (``numpy.pad(mode="reflect")``, any ``pad``: the image repeats as a mirrored tile)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    m = torch.remainder(i, period)
    return torch.where(m < n, m, period - m)


def reflect_pad(x: torch.Tensor, pad: int) -> torch.Tensor:
    """``(N, C, H, W)`` -> ``(N, C, H + 2 pad, W + 2 pad)``, reflect mode, any ``pad`` >= 0
    (``F.pad`` reflect needs pad < side; a gather works for every side). Differentiable."""
    if pad == 0:
        return x
    if pad < x.shape[-2] and pad < x.shape[-1]:
        return F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = reflect_index(x.shape[-2], pad, x.device)
    cols = reflect_index(x.shape[-1], pad, x.device)
    return x.index_select(-2, rows).index_select(-1, cols)


# --------------------------------------------------------------------------------------------
# Valid convolution, one kernel per sample


@contextlib.contextmanager
def _numba_threads(n: int):
    """Numba's thread count (thread-local) set to torch's for the duration (restored after);
    yields whether to run the parallel compilation (more than one thread)."""
    threads = max(1, min(n, numba.config.NUMBA_NUM_THREADS))
    if threads == 1 or not may_use_pool():  # not even asking Numba: that would start its pool
        yield False
        return
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        yield True
    finally:
        numba.set_num_threads(previous)


def _conv_taps(src: torch.Tensor, kernels: np.ndarray) -> torch.Tensor:
    """Valid convolution of float32 CPU ``src`` ``(N, C, Hs, Ws)`` with ``kernels`` (float32
    ``(N, K, K)``) by the Numba sparse-tap kernel."""
    n, c, hs, ws = src.shape
    size = kernels.shape[-1]
    out = torch.empty((n, c, hs - size + 1, ws - size + 1), dtype=torch.float32)
    offsets, weights, ntaps = jit.taps(kernels, ws)
    flat_src = src.detach().contiguous().reshape(-1).numpy()
    with _numba_threads(torch.get_num_threads()) as parallel:
        jit.CONV_TAPS.run(parallel, flat_src, hs, ws, c, offsets, weights, ntaps, out.reshape(-1).numpy(),
                          out.shape[2], out.shape[3])
    return out


class _TapConvolution(torch.autograd.Function):
    """Valid convolution by sparse taps; its gradient (a full correlation) uses the same kernel
    on the zero-padded output gradient with the flipped kernels."""

    @staticmethod
    def forward(ctx, src: torch.Tensor, kernels: np.ndarray) -> torch.Tensor:
        ctx.kernels = kernels
        return _conv_taps(src, kernels)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        size = ctx.kernels.shape[-1]
        padded = F.pad(grad.float(), (size - 1,) * 4)
        flipped = np.ascontiguousarray(ctx.kernels[:, ::-1, ::-1])
        return _conv_taps(padded, flipped), None


def convolve_valid(src: torch.Tensor, kernels: np.ndarray, method: str = "auto") -> torch.Tensor:
    """Valid 2-D convolution, one kernel per sample, every channel.

    Args:
        src: float32/float64 ``(N, C, H + K - 1, W + K - 1)`` on any device.
        kernels: float32 ``(N, K, K)`` NumPy array, K odd.
        method: ``"direct"`` (sparse taps in Numba, float32 CPU only), ``"fft"`` or ``"auto"``
            (direct for float32 CPU tensors up to ``DIRECT_MAX_TAPS`` non-zero taps per kernel,
            FFT otherwise: ``blur.torch_stages.pick_method``).

    Returns:
        ``(N, C, H, W)``, same dtype and device; differentiable in ``src``.
    """
    taps_ok = src.device.type == "cpu" and src.dtype == torch.float32
    method = pick_method(kernels, method, taps_ok)
    if method == "direct":
        if not taps_ok:
            raise ValueError(f"method='direct' needs a float32 CPU tensor, got {src.dtype} on {src.device}")
        return _TapConvolution.apply(src, kernels)
    k = torch.from_numpy(kernels).to(device=src.device, dtype=src.dtype)
    return convolve_fft(src, k)


# --------------------------------------------------------------------------------------------
# Gaussian noise from a counter hash (same integers on every device)

_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """Low 32 bits of x * m for int64 tensors holding 32-bit values, without int64 overflow
    (two half-width products: torch does not promise wrap-around on overflow)."""
    low = x * (m & 0xFFFF)
    high = ((x * (m >> 16)) & 0xFFFF) << 16
    return (low + high) & _M32


def _hash32(x: torch.Tensor) -> torch.Tensor:
    """``blurgen.transforms._fused_jit._hash32`` in torch integer ops."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_normals(keys: np.ndarray, count: int, device: torch.device) -> torch.Tensor:
    """``blurgen.transforms._fused_jit.normals`` computed with torch ops on ``device``: float32 ``(S,
    count)``; the same hash integers and table everywhere, so the same values."""
    k = torch.as_tensor(keys.astype(np.int64), device=device)
    e = torch.arange(count, device=device, dtype=torch.int64)[None]
    words = _hash32(((_hash32(e ^ k[:, :1]) + k[:, 1:]) & _M32))
    table = torch.from_numpy(jit.normal_table()).to(device)
    return table[words & ((1 << jit.NORMAL_BITS) - 1)]


def sample_normals(keys: np.ndarray, count: int, device: torch.device) -> torch.Tensor:
    """Standard normals ``(S, count)`` float32 for samples with 32-bit key pairs ``keys``
    (uint64 ``(S, 2)``): Numba on the CPU, torch integer ops elsewhere (same values)."""
    if device.type != "cpu":
        return hash_normals(keys, count, device)
    with _numba_threads(torch.get_num_threads()) as parallel:
        return torch.from_numpy(jit.normals(keys, count, parallel))


def add_noise(x: torch.Tensor, a: np.ndarray, b: np.ndarray, keys: np.ndarray, clip: bool = True) -> torch.Tensor:
    """``x + sqrt(a x + b) z`` (clipped to [0, 1] if ``clip``), x ``(S, C, H, W)``; a, b, keys per
    sample."""
    z = sample_normals(keys, x[0].numel(), x.device).reshape(x.shape).to(x.dtype)
    a_t = torch.as_tensor(a, dtype=x.dtype).reshape(-1, 1, 1, 1).to(x.device)
    b_t = torch.as_tensor(b, dtype=x.dtype).reshape(-1, 1, 1, 1).to(x.device)
    out = noise_stage(x, a_t, b_t, z)
    return out.clamp(0.0, 1.0) if clip else out


# --------------------------------------------------------------------------------------------
# The whole blur: generic torch path (any device, differentiable) and fused CPU path


def blur_torch(x: torch.Tensor, kernels: np.ndarray, gamma: str | None, method: str,
               noise: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> torch.Tensor:
    """Decode, reflect-pad, convolve, clip, noise (``(a, b, keys)`` per image), clip, encode, on
    float32/float64 ``(S, C, H, W)`` with float32 ``(S, K, K)`` kernels; torch ops (autograd).
    Without ``gamma`` nothing is clipped: the values are blurred as they are (a normalised batch)."""
    if not gamma:
        out = convolve_valid(reflect_pad(x, kernels.shape[-1] // 2), kernels, method)
        return add_noise(out, *noise, clip=False) if noise is not None else out
    lin = decode_curve(x.clamp(0.0, 1.0), gamma)
    out = convolve_valid(reflect_pad(lin, kernels.shape[-1] // 2), kernels, method).clamp(0.0, 1.0)
    if noise is not None:
        out = add_noise(out, *noise)
    return encode_curve(out, gamma)


def fused_ok(x: torch.Tensor, kernels: np.ndarray, method: str) -> bool:
    """Whether the fused Numba path serves this call: float32 CPU, sparse-tap kernels."""
    direct_ok = x.device.type == "cpu" and x.dtype == torch.float32
    return direct_ok and pick_method(kernels, method, direct_ok) == "direct"


def _reflect_rows(n: int, pad: int) -> np.ndarray:
    """``reflect_index`` in NumPy (int64)."""
    i = np.arange(-pad, n + pad, dtype=np.int64)
    if n == 1:
        return np.zeros_like(i)
    m = np.remainder(i, 2 * (n - 1))
    return np.where(m < n, m, 2 * (n - 1) - m)


def blur_planes(src: np.ndarray, kernels: np.ndarray, gamma: str | None,
                noise: tuple[np.ndarray, np.ndarray, np.ndarray] | None, threads: int = 1) -> np.ndarray:
    """The fused Numba blur on float32 planes ``src`` ``(S * C, H, W)`` (C-contiguous) with one
    kernel per sample ``(S, K, K)``: decode, reflect-pad, sparse-tap convolution, clip, noise, clip,
    encode. Returns float32 ``(S * C, H, W)``."""
    n = len(kernels)
    _, h, w = src.shape
    radius = kernels.shape[-1] // 2
    offsets, weights, ntaps = jit.taps(kernels, w + 2 * radius)
    empty = np.empty(0, np.float32)
    decode, encode = (jit.decode_table(gamma), jit.encode_table(gamma)) if gamma else (empty, empty)
    a, b, keys = noise if noise is not None else (np.zeros(n, np.float32),) * 2 + (np.zeros((n, 2), np.uint64),)
    table = jit.normal_table() if noise is not None else empty
    out = np.empty(src.shape, np.float32)
    with _numba_threads(threads) as parallel:
        jit.SHAKE.run(parallel, src, _reflect_rows(h, radius), _reflect_rows(w, radius), decode, encode, offsets,
                      weights, ntaps, np.asarray(a, np.float32), np.asarray(b, np.float32),
                      np.ascontiguousarray(keys, np.uint64), table, out)
    return out


def _blur_fused(x: torch.Tensor, kernels: np.ndarray, gamma: str | None,
                noise: tuple[np.ndarray, np.ndarray, np.ndarray] | None) -> torch.Tensor:
    n, c, h, w = x.shape
    src = x.detach().contiguous().reshape(n * c, h, w).numpy()
    return torch.from_numpy(blur_planes(src, kernels, gamma, noise, torch.get_num_threads())).reshape(n, c, h, w)


class _FusedBlur(torch.autograd.Function):
    """Forward by the fused Numba loop; backward through ``blur_torch`` recomputed with
    autograd (the same function to float rounding, tested)."""

    @staticmethod
    def forward(ctx, x, kernels, gamma, noise):
        ctx.save_for_backward(x)
        ctx.args = (kernels, gamma, noise)
        return _blur_fused(x, kernels, gamma, noise)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        kernels, gamma, noise = ctx.args
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(True)
            (grad_x,) = torch.autograd.grad(blur_torch(leaf, kernels, gamma, "direct", noise), leaf, grad)
        return grad_x, None, None, None


def blur(x: torch.Tensor, kernels: np.ndarray, gamma: str | None, method: str = "auto",
         noise: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> torch.Tensor:
    """``blur_torch``, by the fused Numba loop where ``fused_ok`` (float32 CPU, thin kernels, in
    linear light: the fused loop clips, which only a transfer curve asks for)."""
    if gamma and fused_ok(x, kernels, method):
        return _FusedBlur.apply(x, kernels, gamma, noise)
    return blur_torch(x, kernels, gamma, method, noise)
