"""The camera blur model: sRGB <-> linear light, saturation gain, valid convolution, sensor noise.

Stages of one sample (DESIGN.md "Blur model"):

1. sharp sRGB uint8 -> linear light (exact sRGB curve, or a pure 2.2 power as GoPro's blur_gamma);
2. linear x gain (both images; gain > 1 for ``gain_prob`` of the samples, so highlights saturate);
3. valid **convolution** of the (H+k-1, W+k-1) crop with the kernel -> (H, W);
4. clip both images to [0, 1] (a saturated light smears into a streak, as on a real sensor);
5. heteroscedastic sensor noise on the blurred image only, variance ``a * x + b``;
6. back to sRGB uint8; optionally a JPEG round trip of the blurred image.

The float stage ``blur_linear`` is public so tests (and users) can feed it a point or a constant.
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass

import cv2
import numpy as np

from blurgen._jit import njit
from blurgen._rng import GOLDEN, mix64
from blurgen.config import ConfigMixin, check_number, check_pair
from blurgen.kernels import crop_to_support

GAMMAS = ("srgb", "2.2")
NOISE_MODELS = ("gaussian", "poisson", "off")
#: Largest Poisson mean numpy samples (its own limit, int64 max - 10 sqrt(int64 max)); beyond
#: it add_sensor_noise adds no shot noise.
POISSON_MAX_MEAN = float(np.iinfo(np.int64).max) - 10 * math.sqrt(float(np.iinfo(np.int64).max))
BLUR_METHODS = ("auto", "direct", "fft")
#: The inverse (linear -> sRGB) table is indexed by sqrt(linear) quantised to this many steps:
#: the square root spreads the dark end, where both curves are steep (a pure 2.2 power has
#: infinite slope at 0 and code 1 is 5e-6 linear), so every step is < 0.02 of a code value.
ENCODE_STEPS = 65536
#: "auto" convolves directly (one pass per 8 non-zero taps) up to this many non-zero taps and by
#: FFT above. Measured on one core: a direct tap costs ~9 us at 256x256 and ~125 us at 1280x720,
#: the FFT path ~5.5 ms and ~48 ms, so the crossover is 350-700 taps. A camera-shake kernel of the
#: default model has ~80-170 non-zero taps; dense kernels (defocus, box) go to the FFT.
DIRECT_MAX_TAPS = 400
#: Taps summed per pass over an output row by ``_conv_taps`` (written out for exactly eight;
#: measured ~1.5x faster than two per pass, and more gain nothing).
_TAPS_PER_PASS = 8


@dataclass(frozen=True)
class BlurConfig(ConfigMixin):
    """Per-sample camera model around the blur; every drawn value is recorded with the sample.

    Attributes:
        gamma: transfer curve, ``"srgb"`` (exact IEC 61966-2-1) or ``"2.2"`` (pure power, as
            GoPro's ``blur_gamma`` frames).
        saturation: switch for stage 2; off means gain 1 for every sample.
        gain_prob: fraction of samples, in [0, 1], whose gain is drawn ``U(1, gain_max)``; the
            others get gain 1.
        gain_max: upper bound of the gain, in [1, 16].
        noise: ``"gaussian"`` (variance ``a*x + b``, the Poisson-Gaussian approximation),
            ``"poisson"`` (exact ``a * Poisson(x / a)`` + Gaussian read noise; slow) or ``"off"``.
        noise_a_range: ``a`` drawn uniformly in it (shot-noise gain, linear units, in [0, 0.1]).
            The default is a well-lit camera: ~1-3 code values of noise in mid-tones.
        noise_b_range: ``b`` drawn uniformly in it (read-noise variance, in [0, 0.01]).
        jpeg_quality_range: ``(low, high)`` in [1, 100] to JPEG-compress the blurred image at a
            quality drawn uniformly in it, or ``None`` (default) for no JPEG.
    """

    gamma: str = "srgb"
    saturation: bool = True
    gain_prob: float = 0.25
    gain_max: float = 1.5
    noise: str = "gaussian"
    noise_a_range: tuple[float, float] = (1e-4, 1e-3)
    noise_b_range: tuple[float, float] = (1e-7, 1e-6)
    jpeg_quality_range: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        if self.gamma not in GAMMAS:
            raise ValueError(f"gamma must be one of {GAMMAS}, got {self.gamma!r}")
        if not isinstance(self.saturation, (bool, np.bool_)):
            raise ValueError(f"saturation must be True or False, got {self.saturation!r}")
        object.__setattr__(self, "saturation", bool(self.saturation))
        object.__setattr__(self, "gain_prob", check_number("gain_prob", self.gain_prob, 0.0, 1.0))
        object.__setattr__(self, "gain_max", check_number("gain_max", self.gain_max, 1.0, 16.0))
        if self.noise not in NOISE_MODELS:
            raise ValueError(f"noise must be one of {NOISE_MODELS}, got {self.noise!r}")
        object.__setattr__(self, "noise_a_range", check_pair("noise_a_range", self.noise_a_range, 0.0, 0.1))
        object.__setattr__(self, "noise_b_range", check_pair("noise_b_range", self.noise_b_range, 0.0, 0.01))
        if self.jpeg_quality_range is not None:
            q = check_pair("jpeg_quality_range", self.jpeg_quality_range, 1, 100, integer=True)
            object.__setattr__(self, "jpeg_quality_range", q)


# --------------------------------------------------------------------------------------------
# Transfer curves


def _decode_curve(v: np.ndarray, gamma: str) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear light (float64)."""
    if gamma == "2.2":
        return v ** 2.2
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def _encode_curve(x: np.ndarray, gamma: str) -> np.ndarray:
    """Linear light in [0, 1] -> sRGB-encoded values in [0, 1] (float64)."""
    if gamma == "2.2":
        return x ** (1 / 2.2)
    return np.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)


def _check_gamma(gamma: str) -> str:
    if gamma not in GAMMAS:
        raise ValueError(f"gamma must be one of {GAMMAS}, got {gamma!r}")
    return gamma


@functools.lru_cache(maxsize=None)
def decode_lut(gamma: str = "srgb") -> np.ndarray:
    """float32 (256,): linear light of each uint8 code value (read-only)."""
    lut = _decode_curve(np.arange(256) / 255.0, _check_gamma(gamma)).astype(np.float32)
    lut.setflags(write=False)
    return lut


@functools.lru_cache(maxsize=None)
def encode_lut(gamma: str = "srgb") -> np.ndarray:
    """uint8 (ENCODE_STEPS,): the rounded code value of linear light ``(i / (ENCODE_STEPS-1))**2``."""
    x = (np.arange(ENCODE_STEPS) / (ENCODE_STEPS - 1)) ** 2
    lut = np.round(_encode_curve(x, _check_gamma(gamma)) * 255.0).astype(np.uint8)
    lut.setflags(write=False)
    return lut


def srgb_to_linear(img_u8: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """uint8 sRGB image (any shape) -> float32 linear light in [0, 1], same shape (table lookup).

    Example:
        >>> srgb_to_linear(np.array([0, 255], np.uint8)).tolist()
        [0.0, 1.0]
    """
    img = np.asarray(img_u8)
    if img.dtype != np.uint8:
        raise ValueError(f"srgb_to_linear expects uint8, got {img.dtype}")
    if img.size == 0:
        return np.zeros(img.shape, np.float32)
    # cv2.LUT on a flat view: 2-4x faster than np.take (measured), any shape.
    flat = np.ascontiguousarray(img).reshape(1, -1)
    return cv2.LUT(flat, decode_lut(gamma)).reshape(img.shape)


#: Values per pass of the encode and noise loops: a multiple of five (whole noise hashes), small
#: enough that a chunk's normals and table indices stay in L1 cache.
_CHUNK = 5 * 512


@njit(cache=True, inline="always")
def _code_index(x, top):
    """Encode-table index of linear value x (clipped to [0, 1]; NaN -> 0 since ``not x > 0``);
    ``top`` is the table's last index as float32. Branch-free, so loops over it vectorise."""
    k = np.int32(np.float32(math.sqrt(min(max(x, np.float32(0.0)), np.float32(1.0)))) * top + np.float32(0.5))
    return k if x > 0.0 else 0


@njit(cache=True, inline="always")
def _look_up(lut, index, count, out, start):
    """out[start + i] = lut[index[i]] for i < count: the table reads, kept out of the
    arithmetic loops so those vectorise (measured 2x faster than one fused loop)."""
    for i in range(count):
        out[start + i] = lut[index[i]]


@njit(cache=True)
def _encode(flat_linear, lut, out):
    index = np.empty(_CHUNK, np.int32)
    top = np.float32(lut.shape[0] - 1)
    for start in range(0, flat_linear.shape[0], _CHUNK):
        count = min(_CHUNK, flat_linear.shape[0] - start)
        for i in range(count):
            index[i] = _code_index(flat_linear[start + i], top)
        _look_up(lut, index, count, out, start)


def linear_to_srgb(lin: np.ndarray, gamma: str = "srgb") -> np.ndarray:
    """float linear light (any shape) -> uint8 sRGB, clipped to [0, 1] first (one fused pass).

    Within one code value of the exact curve (sqrt of linear quantised to 16 bits, then a
    table; measured max error 0.503 code values), and
    ``linear_to_srgb(srgb_to_linear(u)) == u`` for every code value u.
    """
    arr = np.ascontiguousarray(lin, dtype=np.float32)
    out = np.empty(arr.shape, np.uint8)
    _encode(arr.reshape(-1), encode_lut(gamma), out.reshape(-1))
    return out


# --------------------------------------------------------------------------------------------
# Valid convolution


def _as_hwc(image: np.ndarray) -> tuple[np.ndarray, bool]:
    img = np.asarray(image)
    if img.ndim == 2:
        return img[:, :, None], True
    if img.ndim != 3:
        raise ValueError(f"image must be (H, W) or (H, W, C), got shape {img.shape}")
    return img, False


def _taps(kernel: np.ndarray, row_stride: int, channels: int) -> tuple[np.ndarray, np.ndarray]:
    """The non-zero taps of a convolution kernel as (flat source offset, weight) pairs for
    ``_conv_taps``, padded with zero-weight taps to a multiple of _TAPS_PER_PASS.

    Valid convolution reads input pixel (y + k-1-i, x + k-1-j) through kernel[i, j], so tap
    (i, j) is at offset ((k-1-i) * row_stride + (k-1-j) * channels) from output pixel (y, x).
    """
    flipped = kernel[::-1, ::-1]
    ys, xs = np.nonzero(flipped)
    pad = -ys.size % _TAPS_PER_PASS
    offsets = np.zeros(ys.size + pad, np.uint64)
    offsets[:ys.size] = ys * row_stride + xs * channels
    weights = np.zeros(ys.size + pad, np.float32)
    weights[:ys.size] = flipped[ys, xs]
    return offsets, weights


@njit(cache=True)
def _conv_taps(src, src_row, offsets, weights, out, out_row):
    """out[y, :] = sum over taps of weight * src[y, offset:offset + out_row], rows flattened
    (x, channel); eight taps per pass over the output row, so the row is read and written once
    per eight taps and the x loop vectorises.

    Indices are unsigned on purpose: Numba guards signed indices against negative values
    (wrap-around), which stops LLVM from vectorising the loop (measured 5x slower).
    """
    for y in range(out.shape[0] // out_row):
        o = np.uint64(y * out_row)
        s = np.uint64(y * src_row)
        for g in range(0, offsets.shape[0], _TAPS_PER_PASS):
            p0, p1, p2, p3 = s + offsets[g], s + offsets[g + 1], s + offsets[g + 2], s + offsets[g + 3]
            p4, p5, p6, p7 = s + offsets[g + 4], s + offsets[g + 5], s + offsets[g + 6], s + offsets[g + 7]
            w0, w1, w2, w3 = weights[g], weights[g + 1], weights[g + 2], weights[g + 3]
            w4, w5, w6, w7 = weights[g + 4], weights[g + 5], weights[g + 6], weights[g + 7]
            for k in range(out_row):
                i = np.uint64(k)
                v = (w0 * src[p0 + i] + w1 * src[p1 + i] + w2 * src[p2 + i] + w3 * src[p3 + i]
                     + w4 * src[p4 + i] + w5 * src[p5 + i] + w6 * src[p6 + i] + w7 * src[p7 + i])
                out[o + i] = v if g == 0 else out[o + i] + v


def _conv_direct(img: np.ndarray, kernel: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Valid convolution summed tap by tap over the kernel's non-zero entries (a motion path is
    a thin curve: most of its bounding box is zero). Exact for a point: each output pixel then
    gets one non-zero product, so the kernel comes back bit for bit."""
    src = np.ascontiguousarray(img, dtype=np.float32)
    channels = src.shape[2]
    offsets, weights = _taps(kernel, src.shape[1] * channels, channels)
    out = np.empty((out_h, out_w, channels), np.float32)
    if offsets.size:  # the first pass writes, the others add
        _conv_taps(src.reshape(-1), src.shape[1] * channels, offsets, weights, out.reshape(-1), out_w * channels)
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
        image: float ``(H+k-1, W+k-1, C)`` or ``(H+k-1, W+k-1)``, linear light (any range).
        kernel: float ``(k, k)``, k odd (normally non-negative, sum 1, centred).
        method: ``"direct"`` (a sum over the kernel's non-zero taps; exact for a point),
            ``"fft"`` (OpenCV DFT, ~1e-7 error) or ``"auto"`` (direct up to ``DIRECT_MAX_TAPS``
            non-zero taps, FFT above; measured crossover).

    Returns:
        float32 ``(H, W, C)`` (or ``(H, W)`` for a 2-D image).

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
    size = k.shape[0]
    out_h, out_w = img.shape[0] - size + 1, img.shape[1] - size + 1
    if out_h < 1 or out_w < 1:
        raise ValueError(f"image {img.shape[:2]} is smaller than the kernel ({size}, {size})")
    cropped = crop_to_support(k).astype(np.float32, copy=False)
    margin = (size - cropped.shape[0]) // 2
    img = img[margin:img.shape[0] - margin, margin:img.shape[1] - margin].astype(np.float32, copy=False)
    if method == "auto":
        method = "direct" if np.count_nonzero(cropped) <= DIRECT_MAX_TAPS else "fft"
    if method == "direct":
        out = _conv_direct(img, cropped, out_h, out_w)
    else:
        out = _conv_fft(img, cropped, out_h, out_w)
    return out[:, :, 0] if flat else out


# --------------------------------------------------------------------------------------------
# Sensor noise

_NORMAL_BITS = 12
_NORMALS_PER_HASH = 64 // _NORMAL_BITS
_NO_LUT = np.empty(0, np.uint8)


@functools.lru_cache(maxsize=None)
def _normal_table() -> np.ndarray:
    """float32 (2**12,): standard normal quantiles at the cell midpoints, rescaled to variance 1.

    A 12-bit uniform indexes it, so one 64-bit hash yields five normals. It is a discretised
    Gaussian truncated at 3.67 sigma (tail mass 2e-4 moved inwards; kurtosis 2.99): at 8-bit output
    precision indistinguishable from the real one, several times faster than numpy's ziggurat,
    and small enough (16 kB) to stay in L1 cache between the random lookups.
    """
    cells = 1 << _NORMAL_BITS
    # statistics' inverse CDF, not scipy.special.ndtri: the same float32 table (checked; the
    # float64 values agree to 1.3e-15) without importing scipy.special (~0.3 s per worker).
    inverse_cdf = statistics.NormalDist().inv_cdf
    z = np.array([inverse_cdf((i + 0.5) / cells) for i in range(cells)])
    z /= np.sqrt(np.mean(z * z))
    return z.astype(np.float32)


@njit(cache=True, inline="always")
def _clean(x, gain, clip):
    """x * gain, clipped to [0, 1] if ``clip`` (NaN stays NaN, as with np.clip); branch-free."""
    x = x * gain
    # Comparisons, not min/max, so that NaN falls through both.
    clipped = np.float32(0.0) if x < np.float32(0.0) else (np.float32(1.0) if x > np.float32(1.0) else x)  # noqa: FURB136
    return clipped if clip else x


@njit(cache=True, inline="always")
def _noisy(x, a, b, z):
    return x + np.float32(math.sqrt(max(a * x + b, np.float32(0.0)))) * z


@njit(cache=True)
def _gaussian_noise(flat, gain, clip, a, b, key, table, lut, out_u8):
    """x + sqrt(a*x + b) * z with x = ``_clean(flat, gain, clip)`` and z from the counter-based
    hash stream ``key`` (five normals per 64-bit hash: normal i comes from hash i // 5); in
    place on ``flat``, or, when ``lut`` is non-empty, encoded through it into ``out_u8``
    instead (fused: one pass over the image instead of five). Chunk by chunk: first the
    chunk's normals, then vectorised arithmetic (branches hoisted out of the loops: inside
    them they stopped the vectorisation, measured)."""
    n = flat.shape[0]
    encode = lut.shape[0] > 0
    per = _NORMALS_PER_HASH
    mask = np.uint64((1 << _NORMAL_BITS) - 1)
    z = np.empty(_CHUNK, np.float32)
    index = np.empty(_CHUNK, np.int32)
    top = np.float32(lut.shape[0] - 1)
    for start in range(0, n, _CHUNK):
        count = min(_CHUNK, n - start)
        first_hash = start // per
        for block in range((count + per - 1) // per):
            h = mix64(key + np.uint64(first_hash + block + 1) * GOLDEN)
            for j in range(per):
                z[per * block + j] = table[np.int64((h >> np.uint64(_NORMAL_BITS * j)) & mask)]
        if encode:
            for i in range(count):
                index[i] = _code_index(_noisy(_clean(flat[start + i], gain, clip), a, b, z[i]), top)
            _look_up(lut, index, count, out_u8, start)
        else:
            for i in range(count):
                flat[start + i] = _noisy(_clean(flat[start + i], gain, clip), a, b, z[i])


def _noise_key(rng: np.random.Generator) -> np.uint64:
    return np.uint64(rng.integers(0, 2**63, dtype=np.int64))


def add_sensor_noise(lin: np.ndarray, a: float, b: float, rng: np.random.Generator,
                     model: str = "gaussian") -> np.ndarray:
    """Sensor noise with variance ``a * x + b`` on a linear image (x = the clean value).

    Args:
        lin: float32 linear light in [0, 1], any shape; not modified.
        a: shot-noise gain (>= 0), b: read-noise variance (>= 0).
        rng: the sample's generator; the noise is a function of its next draw (and ``lin``).
        model: ``"gaussian"`` (Poisson-Gaussian approximation), ``"poisson"`` (exact
            ``a * Poisson(x / a) + N(0, b)``) or ``"off"`` (a copy).

    Returns:
        float32, same shape, not clipped (a caller clips when it encodes).
    """
    if model not in NOISE_MODELS:
        raise ValueError(f"model must be one of {NOISE_MODELS}, got {model!r}")
    out = np.array(lin, dtype=np.float32, copy=True, order="C")
    key = _noise_key(rng)
    if model == "gaussian":
        with np.errstate(over="ignore"):  # uint64 wrap-around is intended (NUMBA_DISABLE_JIT)
            _gaussian_noise(out.reshape(-1), np.float32(1.0), False, np.float32(a), np.float32(b), key,
                            _normal_table(), _NO_LUT, np.empty(0, np.uint8))
    elif model == "poisson":
        # The stream of this branch is numpy's, seeded from the same draw.
        sub = np.random.default_rng(int(key))
        clean = np.clip(out, 0.0, None)
        # A mean x / a beyond POISSON_MAX_MEAN (where numpy's sampler raises) only happens for
        # a < ~1e-18, where the shot noise (std sqrt(a * x) < 1e-8) is nothing: none is added.
        # Every a numpy can sample keeps the exact model, and the same random stream.
        with np.errstate(over="ignore"):  # inf for a tiny a: above the limit, so no shot noise
            lam = clean / a if a > 0 else None
        usable = lam is not None and not float(lam.max(initial=0.0)) > POISSON_MAX_MEAN
        shot = sub.poisson(lam) * a if usable else clean
        out = (shot + sub.normal(0.0, math.sqrt(b), out.shape)).astype(np.float32)
    return out


def noisy_to_srgb(lin: np.ndarray, a: float, b: float, rng: np.random.Generator,
                  gamma: str = "srgb", gain: float = 1.0, clip: bool = False) -> np.ndarray:
    """``linear_to_srgb(add_sensor_noise(lin, a, b, rng, "gaussian"), gamma)`` in one pass.

    Args:
        lin: float32 linear light (any shape, C-contiguous is fastest); not modified.
        gain, clip: the clean value is ``lin * float32(gain)``, clipped to [0, 1] if ``clip``
            (the sensor's gain and saturation, fused into the same pass).

    Returns:
        uint8 sRGB, same shape; bit-identical to the two-step version (tested).
    """
    flat = np.ascontiguousarray(lin, dtype=np.float32)
    out = np.empty(flat.shape, np.uint8)
    with np.errstate(over="ignore"):
        _gaussian_noise(flat.reshape(-1), np.float32(gain), bool(clip), np.float32(a), np.float32(b),
                        _noise_key(rng), _normal_table(), encode_lut(gamma), out.reshape(-1))
    return out


# --------------------------------------------------------------------------------------------
# One sample


def draw_blur_params(rng: np.random.Generator, config: BlurConfig) -> dict[str, float | int]:
    """Draw one sample's camera parameters. All five draws always happen, in a fixed order, so
    switching one stage off does not change the values (or noise) of the others."""
    u_gain_choice, u_gain, u_a, u_b, u_q = rng.random(5)
    gain = 1.0 + (config.gain_max - 1.0) * u_gain if u_gain_choice < config.gain_prob else 1.0
    a_lo, a_hi = config.noise_a_range
    b_lo, b_hi = config.noise_b_range
    on = config.noise != "off"
    quality = -1
    if config.jpeg_quality_range is not None:
        q_lo, q_hi = config.jpeg_quality_range
        quality = min(q_lo + int(u_q * (q_hi - q_lo + 1)), q_hi)
    return {
        "gain": float(np.float32(gain if config.saturation else 1.0)),
        "noise_a": float(np.float32(a_lo + (a_hi - a_lo) * u_a)) if on else 0.0,
        "noise_b": float(np.float32(b_lo + (b_hi - b_lo) * u_b)) if on else 0.0,
        "jpeg_quality": quality,
    }


def jpeg_round_trip(rgb_u8: np.ndarray, quality: int) -> np.ndarray:
    """Encode uint8 RGB (H, W, 3) as JPEG at ``quality`` (1..100) with OpenCV and decode it."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb_u8[:, :, ::-1]),
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])


def blur_sample(sharp_u8: np.ndarray, kernel: np.ndarray, rng: np.random.Generator,
                config: BlurConfig | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """Make one aligned blurred/sharp pair from a sharp crop and a kernel.

    Args:
        sharp_u8: uint8 sRGB ``(H+k-1, W+k-1, 3)``.
        kernel: float32 ``(k, k)``, k odd, sum 1, centred.
        rng: the sample's own generator (draws the camera parameters and the noise).
        config: the camera model (default ``BlurConfig()``).

    Returns:
        ``blurred``, ``sharp``: uint8 ``(H, W, 3)``, aligned pixel for pixel (``sharp`` is the
        centre of the crop, after the same gain and clipping); ``params``: ``gain``, ``noise_a``,
        ``noise_b``, ``jpeg_quality`` (-1 = off).
    """
    config = BlurConfig() if config is None else config
    sharp_u8 = np.asarray(sharp_u8)
    if sharp_u8.dtype != np.uint8 or sharp_u8.ndim != 3:
        raise ValueError(f"sharp_u8 must be uint8 (H+k-1, W+k-1, C), got {sharp_u8.dtype} {sharp_u8.shape}")
    params = draw_blur_params(rng, config)
    half = (np.shape(kernel)[0] - 1) // 2
    lin = srgb_to_linear(sharp_u8, config.gamma)
    # Convolution is linear, so scaling its (smaller) output by the gain equals blurring the
    # scaled input; clipping happens after both, as on the sensor.
    blurred = blur_linear(lin, kernel)
    gain = params["gain"]
    centre = np.ascontiguousarray(sharp_u8[half:sharp_u8.shape[0] - half, half:sharp_u8.shape[1] - half])
    if gain != 1.0:
        # The sharp image's 256 code values through the same gain and encoding, as a table.
        sharp_out = cv2.LUT(centre, linear_to_srgb(decode_lut(config.gamma) * np.float32(gain), config.gamma))
    else:
        # linear_to_srgb(srgb_to_linear(u)) == u exactly, so the round trip can be skipped.
        sharp_out = centre
    if config.noise == "gaussian":
        blurred_u8 = noisy_to_srgb(blurred, params["noise_a"], params["noise_b"], rng, config.gamma,
                                   gain=gain, clip=True)
    else:
        blurred *= np.float32(gain)
        np.clip(blurred, 0.0, 1.0, out=blurred)
        if config.noise == "poisson":
            blurred = add_sensor_noise(blurred, params["noise_a"], params["noise_b"], rng, "poisson")
        blurred_u8 = linear_to_srgb(blurred, config.gamma)
    if params["jpeg_quality"] >= 0:
        blurred_u8 = jpeg_round_trip(blurred_u8, params["jpeg_quality"])
    return blurred_u8, sharp_out, params
