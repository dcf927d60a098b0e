"""Blurred/sharp pairs, block by block: motion (kernels or a camera) + sharp crops + the sensor.

``make_block(config, seed, start, count)`` makes samples ``start .. start + count - 1``. Sample i
depends only on ``(seed, i)``: its kernel is ``random_kernels(..., seed=seed, start=i)[0]`` (or its
camera motion ``random_camera_motion(..., seed=seed, start=i)``), its sharp crop comes from the
source's stream ``[seed, i, SOURCE_STREAM]`` and its sensor parameters and noise from
``[seed, i, BLUR_STREAM]``. Blocks therefore tile a dataset in any way (workers, shards, resume)
with identical arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blurgen.blur import BlurConfig, render_sample
from blurgen.blur.isp import IspConfig, check_pipeline
from blurgen.blur.raw import render_camera_sample
from blurgen.camera.config import CameraConfig
from blurgen.core.common import DatasetError
from blurgen.core.config import MAX_SIDE, MIN_SIDE, ConfigMixin, KernelConfig, check_index, check_pair
from blurgen.motion import registry
from blurgen.sources.base import GOPRO_SPLITS, Source, open_source

#: Stream id of the camera draws (gain, noise levels, noise) in ``default_rng([seed, i, BLUR_STREAM])``.
BLUR_STREAM = 2

#: dtype of every per-sample parameter make_block returns (fixed, whatever the call).
PARAM_DTYPES = {
    "seed_index": np.int64,
    "source_index": np.int32,
    "exposure_fraction": np.float32,
    "path_length_px": np.float32,
    "anxiety": np.float32,
    "centripetal": np.float32,
    "gaussian_shake": np.float32,
    "big_shake_prob": np.float32,
    "initial_angle_rad": np.float32,
    "exposed_steps": np.int32,
    "big_shakes": np.int32,
    "redraws": np.int32,
    "kernel_support_px": np.int32,
    "source_file": np.int32,
    "crop_y": np.int32,
    "crop_x": np.int32,
    "gain": np.float32,
    "noise_a": np.float32,
    "noise_b": np.float32,
    "jpeg_quality": np.int32,
    # the camera pipeline's (blurgen.blur.raw.render_camera_sample)
    **{f"ccm_{k}": np.float32 for k in range(9)},
    "wb_red": np.float32,
    "wb_blue": np.float32,
    "digital_gain": np.float32,
    "bayer_pattern": np.int32,
    "light_threshold": np.float32,
    "light_boost": np.float32,
    "light_share": np.float32,
    "clipped_share": np.float32,
}
#: The per-sample values of the sensor stages, by pipeline (the others come from the motion model).
SENSOR_PARAMS = {
    "srgb": ("gain", "noise_a", "noise_b", "jpeg_quality"),
    "camera": (*(f"ccm_{k}" for k in range(9)), "wb_red", "wb_blue", "digital_gain", "bayer_pattern", "gain",
               "noise_a", "noise_b", "light_threshold", "light_boost", "light_share", "clipped_share",
               "jpeg_quality"),
}


@dataclass(frozen=True)
class PairsConfig(ConfigMixin):
    """Everything that determines a dataset's arrays besides the seed.

    Attributes:
        width, height: output image size in pixels, each in [32, 16384].
        kernel: the camera-shake kernel model.
        blur: the camera model around the blur.
        source: ``"deadleaves"``, ``"gopro:ROOT"`` or a directory of images.
        split: GoPro split, ``"train"`` or ``"test"``.
        motion: the motion model's name (``blurgen.motion.registry``): ``"shake2d"`` (one
            ``kernel`` per sample, the same blur everywhere), ``"camera3d"`` (a rotating hand-held
            ``camera``; the blur varies across the image) or a registered or ``module:attribute`` one.
        camera: the camera model of ``camera3d``; the output is a window of its frame.
        pipeline: the image formation around the blur: ``"srgb"`` (``blur``'s model in linear
            sRGB, the default) or ``"camera"`` (a camera's RAW pipeline, ``blurgen.blur.raw``:
            ``isp`` settings, plus ``blur``'s gamma, saturation, noise model and JPEG range).
        isp: the camera pipeline's settings (``blurgen.blur.isp.IspConfig``).
        kernel_bank: a kernel file or folder (``blurgen.KernelBank``) whose kernels replace the
            random walk of ``shake2d`` ("" for none); ``bank_augment`` draws one of the 8
            flips/rotations per sample, ``bank_scale`` a size factor (low, high) in [0.1, 10].

    A ``shake2d`` config's dict (manifests, the file's ``config`` attribute) has no ``motion``,
    ``camera``, kernel-bank, ``pipeline`` or ``isp`` entries unless it uses them: it is the dict it
    was before they existed.
    """

    width: int = 256
    height: int = 256
    kernel: KernelConfig = field(default_factory=KernelConfig)
    blur: BlurConfig = field(default_factory=BlurConfig)
    source: str = "deadleaves"
    split: str = "train"
    motion: str = registry.DEFAULT
    camera: CameraConfig = field(default_factory=CameraConfig)
    kernel_bank: str = ""
    bank_augment: bool = False
    bank_scale: tuple[float, float] = (1.0, 1.0)
    pipeline: str = "srgb"
    isp: IspConfig = field(default_factory=IspConfig)

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", check_index("width", self.width, MIN_SIDE, MAX_SIDE))
        object.__setattr__(self, "height", check_index("height", self.height, MIN_SIDE, MAX_SIDE))
        if not isinstance(self.kernel, KernelConfig):
            raise ValueError(f"kernel must be a KernelConfig, got {type(self.kernel).__name__}")
        if not isinstance(self.blur, BlurConfig):
            raise ValueError(f"blur must be a BlurConfig, got {type(self.blur).__name__}")
        if not isinstance(self.source, str) or not self.source:
            raise ValueError(f"source must be 'deadleaves', 'gopro:ROOT' or a directory, got {self.source!r}")
        if self.split not in GOPRO_SPLITS:
            raise ValueError(f"split must be one of {GOPRO_SPLITS}, got {self.split!r}")
        if not isinstance(self.camera, CameraConfig):
            raise ValueError(f"camera must be a CameraConfig, got {type(self.camera).__name__}")
        if not isinstance(self.kernel_bank, str) or (self.kernel_bank and self.motion != registry.DEFAULT):
            raise ValueError(f"kernel_bank must be a path (with motion {registry.DEFAULT}) or '', "
                             f"got {self.kernel_bank!r}")
        if not self.kernel_bank and not isinstance(self.settings, self.model.config_type):
            raise ValueError(f"{self.model.config_field} must be a {self.model.config_type.__name__} for motion "
                             f"{self.motion}, got {type(self.settings).__name__}")
        if not isinstance(self.bank_augment, (bool, np.bool_)):
            raise ValueError(f"bank_augment must be True or False, got {self.bank_augment!r}")
        object.__setattr__(self, "bank_augment", bool(self.bank_augment))
        object.__setattr__(self, "bank_scale", check_pair("bank_scale", self.bank_scale, 0.1, 10.0))
        check_pipeline(self.pipeline)
        if not isinstance(self.isp, IspConfig):
            raise ValueError(f"isp must be an IspConfig, got {type(self.isp).__name__}")

    def to_dict(self) -> dict[str, Any]:
        data = super().to_dict()
        if self.motion == registry.DEFAULT:  # the dict of a config from before other models existed
            del data["motion"]
        if self.model.config_field != "camera":
            del data["camera"]
        if not self.kernel_bank:
            del data["kernel_bank"], data["bank_augment"], data["bank_scale"]
        if self.pipeline == "srgb":  # the dict of a config from before the camera pipeline existed
            del data["pipeline"], data["isp"]
        return data

    @property
    def model(self) -> registry.MotionModel:
        """The motion model (a kernel bank replaces the default model's random walk)."""
        return registry.get(registry.BANK if self.kernel_bank else self.motion)

    @property
    def settings(self) -> Any:
        """The motion model's settings."""
        return self.model.settings(self)

    @property
    def kernel_size(self) -> int:
        """Side of the kernels (``/kernel``) and bound of every blur: the motion model's."""
        return getattr(self, self.model.config_field).size

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of the sharp crop each sample needs: the output plus the kernel margin."""
        return self.height + self.kernel_size - 1, self.width + self.kernel_size - 1


def open_config_source(config: PairsConfig, warn: bool = True) -> Source:
    """The config's sharp source, filtering images too small for its crops."""
    return open_source(config.source, config.split, min_size=config.crop_size, warn=warn)


def make_block(config: PairsConfig, seed: int, start: int, count: int,
               source: Source | None = None) -> dict[str, Any]:
    """Make samples ``start .. start + count - 1`` of the dataset ``(config, seed)``.

    Args:
        config: the dataset's settings.
        seed: non-negative int.
        start: index of the first sample, >= 0.
        count: number of samples, >= 1.
        source: an opened source (reuse one across blocks: opening a directory scans it);
            default ``open_config_source(config)``.

    Returns:
        ``blurred``, ``sharp``: uint8 ``(count, H, W, 3)`` RGB, aligned pixel for pixel;
        ``kernel``: float32 ``(count, k, k)``; ``params``: dict name -> 1-D array ``(count,)``
        with the dtypes of ``PARAM_DTYPES`` (kernel draws, ``source_index`` = ``source_file``
        (the index of the image file in the source's ``relative_paths()``, -1 for dead leaves),
        ``crop_y``/``crop_x`` (where the sharp crop, output plus margin, starts in that image),
        ``gain``, ``noise_a``, ``noise_b``, ``jpeg_quality`` (-1 = off), ``kernel_support_px``, ...).

    Example:
        >>> block = make_block(PairsConfig(width=32, height=32), seed=0, start=5, count=2)
        >>> block["blurred"].shape, int(block["params"]["seed_index"][0])
        ((2, 32, 32, 3), 5)
    """
    seed = check_index("seed", seed, 0)
    start = check_index("start", start, 0)
    count = check_index("count", count, 1)
    if source is None:
        source = open_config_source(config)
    samples = config.model.draw(config, seed, start, count)
    half = (config.kernel_size - 1) // 2
    crop_h, crop_w = config.crop_size
    blurred = np.empty((count, config.height, config.width, 3), np.uint8)
    sharp = np.empty((count, config.height, config.width, 3), np.uint8)
    extra = {name: np.empty(count, PARAM_DTYPES[name])
             for name in ("source_index", "source_file", "crop_y", "crop_x", *SENSOR_PARAMS[config.pipeline])}
    for m in range(count):
        index = start + m
        margin, step = samples.sample(m)
        # Only the margin the blur needs is read: the centre of the full crop (same pixels).
        crop, extra["source_index"][m], extra["crop_y"][m], extra["crop_x"][m] = source.crop_with_origin(
            seed, index, crop_h, crop_w, inset=half - margin)
        extra["source_file"][m] = extra["source_index"][m]  # index into the file's /source_files
        rng = np.random.default_rng([seed, index, BLUR_STREAM])
        if config.pipeline == "camera":
            blurred[m], sharp[m], camera = render_camera_sample(crop, margin, step, rng, config.blur, config.isp)
        else:
            blurred[m], sharp[m], camera = render_sample(crop, margin, step, rng, config.blur)
        for name, value in camera.items():
            extra[name][m] = value
    params = {**samples.params, **extra}
    params = {name: np.asarray(params[name], dtype=PARAM_DTYPES.get(name, params[name].dtype))
              for name in sorted(params)}
    block = {"blurred": blurred, "sharp": sharp, "kernel": samples.kernels, "params": params}
    if samples.motion:
        block["motion"] = samples.motion
    return block
class PipelineMaker:
    """The default block maker (``blurgen.runs.workers.BlockMaker``): ``make_block`` with the
    sharp-image source opened once per process. Pickles without its source, so each worker opens
    its own, and checks that it found the same files (and the same kernel bank) as the parent."""

    def __init__(self) -> None:
        self._source = None
        self._digest: str | None = None
        self._expected: str | None = None  # a worker's copy: the parent's digest
        self._model_print = ""  # the motion model's input fingerprint (a kernel bank's), if any
        self._expected_model: str | None = None

    def __getstate__(self) -> dict:
        return {"digest": self._digest, "model": self._model_print}

    def __setstate__(self, state: dict) -> None:
        self.__init__()
        self._expected, self._expected_model = state["digest"], state["model"]

    def prepare(self, config: Any) -> None:
        """Check the motion model and open the source now: a kernel too small for its paths
        (``ValueError``), an unusable kernel bank or an empty or unreadable source fails before
        any work starts."""
        self._check_model(self._pairs(config), fresh=True)
        self._open_source(config)

    @staticmethod
    def _pairs(config: Any) -> Any:
        """The ``PairsConfig`` inside the run's config (a subclass's run may wrap it)."""
        return config

    @staticmethod
    def _open(config: Any, warn: bool) -> Any:
        """The run's sharp-image source."""
        return open_config_source(config, warn=warn)

    def _check_model(self, config: Any, fresh: bool) -> None:
        fingerprint = config.model.check(config, fresh=fresh)
        if self._expected_model is not None and fingerprint != self._expected_model:
            raise DatasetError(f"the kernel bank {config.kernel_bank} holds other kernels than when the run "
                               "started (it changed during the run); restore it, or start again with --overwrite")
        self._model_print = fingerprint
        config.model.pin(config)  # this run keeps its inputs (a kernel bank), whatever the file does

    def _open_source(self, config: Any) -> None:
        spec = self._pairs(config).source
        if spec == "deadleaves":
            return  # procedural: nothing to check, and each process opens its own
        # A worker's copy (which knows the parent's digest) opens quietly: the parent has said
        # which files it skips, once per run.
        self._source = self._open(config, warn=self._expected is None)
        digest = self._source.fingerprint()
        if self._expected is not None and digest != self._expected:
            raise DatasetError(f"the files of source {spec} changed while the run was "
                               "starting; rerun with --resume")
        self._digest = digest

    def source_files_digest(self) -> str:
        """``Source.fingerprint()`` of the source ``prepare`` opened ("" for dead leaves), and the
        kernel bank's fingerprint if there is one: what a resumed run must find again."""
        return (self._digest or "") + (f";kernel bank {self._model_print}" if self._model_print else "")

    def source_files(self) -> list[str]:
        return self._source.relative_paths() if self._source is not None else []

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        if self._source is None:
            self._open_source(config)
        if self._expected_model and not self._model_print:
            self._check_model(config, fresh=False)  # a worker: the same kernel bank as its parent
        return make_block(config, seed, start, count, source=self._source)
