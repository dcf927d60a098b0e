"""Valid 2-D convolution of linear-light images with blur kernels: direct (sparse taps) or FFT."""

from __future__ import annotations

import cv2
import numpy as np

from blurgen.blur._convolve_jit import TAPS_PER_PASS, conv_taps
from blurgen.core.kernel_shape import crop_to_support

BLUR_METHODS = ("auto", "direct", "fft")
#: "auto" convolves directly (one pass per 8 non-zero taps) up to this many non-zero taps and by
#: FFT above. Measured on one core: a direct tap costs ~9 us at 256x256 and ~125 us at 1280x720,
#: the FFT path ~5.5 ms and ~48 ms, so the crossover is 350-700 taps. A camera-shake kernel of the
#: default model has ~80-170 non-zero taps; dense kernels (defocus, box) go to the FFT.
DIRECT_MAX_TAPS = 400


def _as_hwc(image: np.ndarray) -> tuple[np.ndarray, bool]:
    img = np.asarray(image)
    if img.ndim == 2:
        return img[:, :, None], True
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    return img, False


def _taps(kernel: np.ndarray, row_stride: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero taps of a convolution kernel as (flat source offset, weight) pairs for
    ``conv_taps``, padded with zero-weight taps to a multiple of TAPS_PER_PASS.

    Valid convolution reads input pixel (y + k-1-i, x + k-1-j) through kernel[i, j], so tap
    (i, j) is at offset ((k-1-i) * row_stride + (k-1-j) * channels) from output pixel (y, x).
    """
    flipped = kernel[::-1, ::-1]
    ys, xs = np.nonzero(flipped)
    pad = -ys.size % TAPS_PER_PASS
    offsets = np.zeros(ys.size + pad, np.uint64)
    offsets[:ys.size] = ys * row_stride + xs * channels
    weights = np.zeros(ys.size + pad, np.float32)
    weights[:ys.size] = flipped[ys, xs]
    return offsets, weights


def _conv_direct(img: np.ndarray, kernel: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Valid convolution summed tap by tap over the kernel's non-zero entries (a motion path is
    a thin curve: most of its bounding box is zero). Exact for a point: each output pixel then
    gets one non-zero product, so the kernel comes back bit for bit."""
    src = np.ascontiguousarray(img, dtype=np.float32)
    channels = src.shape[2]
    offsets, weights = _taps(kernel, src.shape[1] * channels, channels)
    out = np.empty((out_h, out_w, channels), np.float32)
    if offsets.size:  # the first pass writes, the others add
        conv_taps(src.reshape(-1), src.shape[1] * channels, offsets, weights, out.reshape(-1), out_w * channels)
    else:
        out.fill(0.0)
    return out


def _conv_fft(img: np.ndarray, kernel: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Valid convolution by OpenCV's real DFT (measured faster than scipy.fft on one core).

    A circular convolution of size >= the input equals the linear one wherever the kernel does
    not wrap, i.e. exactly on the valid region, so no zero padding beyond the fast size is needed.
    """
    in_h, in_w = img.shape[:2]
    kh, kw = kernel.shape
    fh, fw = cv2.getOptimalDFTSize(in_h), cv2.getOptimalDFTSize(in_w)
    padded_kernel = np.zeros((fh, fw), np.float32)
    padded_kernel[:kh, :kw] = kernel
    kernel_spectrum = cv2.dft(padded_kernel, nonzeroRows=kh)
    canvas = np.zeros((fh, fw), np.float32)
    out = np.empty((out_h, out_w, img.shape[2]), np.float32)
    for c in range(img.shape[2]):
        canvas[:in_h, :in_w] = img[:, :, c]
        spectrum = cv2.mulSpectrums(cv2.dft(canvas, nonzeroRows=in_h), kernel_spectrum, 0)
        full = cv2.idft(spectrum, flags=cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT, nonzeroRows=kh - 1 + out_h)
        out[:, :, c] = full[kh - 1:kh - 1 + out_h, kw - 1:kw - 1 + out_w]
    return out


def blur_linear(image: np.ndarray, kernel: np.ndarray, method: str = "auto") -> np.ndarray:
    """Valid 2-D **convolution** of a linear-light image with a blur kernel.

    The kernel is first cropped to its support symmetrically about its centre pixel and the image
    margin by the same amount, so the result is not shifted; a single bright point becomes the
    kernel as stored (row = y, column = x).

    Args:
        image: float ``(H+k-1, W+k-1, C)`` or ``(H+k-1, W+k-1)``, linear light (any finite range).
        kernel: float ``(k, k)``, k odd, finite (normally non-negative, sum 1, centred).
        method: ``"direct"`` (a sum over the kernel's non-zero taps; exact for a point),
            ``"fft"`` (OpenCV DFT, ~1e-7 error) or ``"auto"`` (direct up to ``DIRECT_MAX_TAPS``
            non-zero taps, FFT above; measured crossover).

    Returns:
        float32 ``(H, W, C)`` (or ``(H, W)`` for a 2-D image).

    Raises:
        ValueError: a bad method or shape, or NaN / infinite values in the image or the kernel
            (they would spread over the whole output).

    Example:
        >>> img = np.zeros((7, 7), np.float32); img[3, 3] = 1
        >>> k = np.zeros((5, 5), np.float32); k[2, 2] = 0.5; k[3, 2] = 0.5  # weight at y + 1
        >>> out = blur_linear(img, k)
        >>> out.shape, float(out[1, 1]), float(out[2, 1])
        ((3, 3), 0.5, 0.5)
    """
    if method not in BLUR_METHODS:
        raise ValueError(f"method must be one of {BLUR_METHODS}, got {method!r}")
    img, flat = _as_hwc(image)
    k = np.asarray(kernel)
    if k.ndim != 2 or k.shape[0] != k.shape[1] or k.shape[0] % 2 == 0:
        raise ValueError(f"kernel must be (k, k) with k odd, got shape {k.shape}")
    for name, values in (("kernel", k), ("image", img)):
        if values.dtype.kind not in "biuf":
            raise ValueError(f"{name} must hold real numbers, got dtype {values.dtype}")
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            raise ValueError(f"{name} holds NaN or infinite values")
    out = convolve_valid(img, k, method)
    return out[:, :, 0] if flat else out


def convolve_valid(img: np.ndarray, kernel: np.ndarray, method: str = "auto") -> np.ndarray:
    """``blur_linear`` for checked inputs: ``img`` float ``(H+k-1, W+k-1, C)``, ``kernel``
    ``(k, k)``, k odd, finite; returns float32 ``(H, W, C)``."""
    size = kernel.shape[0]
    out_h, out_w = img.shape[0] - size + 1, img.shape[1] - size + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"image {img.shape[:2]} is smaller than the kernel ({size}, {size})")
    cropped = crop_to_support(kernel).astype(np.float32, copy=False)
    margin = (size - cropped.shape[0]) // 2
    img = img[margin:img.shape[0] - margin, margin:img.shape[1] - margin].astype(np.float32, copy=False)
    if method == "auto":
        method = "direct" if np.count_nonzero(cropped) <= DIRECT_MAX_TAPS else "fft"
    if method == "direct":
        return _conv_direct(img, cropped, out_h, out_w)
    return _conv_fft(img, cropped, out_h, out_w)
