"""Blurred/sharp **clips**: hand-held video of a static scene, or of a filmed one (a video source,
``ClipsConfig.source_fps``: ``blurgen.sources.sequences``), block by block (HDF5 schema 3).

``make_clip_block(config, seed, start, count)`` makes clips ``start .. start + count - 1``. Clip i
depends only on ``(seed, i)``: its camera motion is ``random_camera_clip(..., seed=seed,
start=i)`` (redrawn whole, as draw 1, 2, ... of the same clip, when a frame's blur outgrows the
kernel size or the content moves further than ``margin_px``: counted in ``redraws``), its still
comes from the source's stream ``[seed, i, SOURCE_STREAM]`` and its sensor values (gain, noise
levels, once per clip: one camera) and noise (frame after frame) from ``[seed, i, BLUR_STREAM]``.
With ``pairs.pipeline == "camera"`` that camera is the RAW pipeline's (``blurgen.blur.raw.CameraSensor``:
colour matrix, white balance, Bayer pattern, lights drawn once per clip; each frame mosaicked,
noised from the same stream after the earlier frames, and developed), and the measured
``light_share``/``clipped_share`` are per frame (``motion``).

Example:
    >>> from blurgen.pairs.pipeline import PairsConfig
    >>> pairs = PairsConfig(width=32, height=32, motion="camera3d")
    >>> block = make_clip_block(ClipsConfig(pairs, frames=2), seed=0, start=3, count=1)
    >>> block["blurred"].shape, block["kernel"].shape, int(block["params"]["seed_index"][0])
    ((1, 2, 32, 32, 3), (1, 2, 65, 65), 3)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from blurgen.blur.curves import decode_lut, linear_to_srgb, srgb_to_linear
from blurgen.blur.model import draw_blur_params, sensor_output
from blurgen.blur.raw import CameraSensor
from blurgen.camera.clip import MAX_FPS, CameraClip, check_clip_settings, random_camera_clip
from blurgen.camera.clip_render import ClipLayout, plan_clip, render_clip
from blurgen.camera.config import CameraConfig
from blurgen.core.config import MAX_SIDE, ConfigMixin, check_index, check_number
from blurgen.pairs.pipeline import BLUR_STREAM, PairsConfig, PipelineMaker
from blurgen.sources import gopro
from blurgen.sources.base import Source, open_source
from blurgen.sources.sequences import GOPRO_FPS, SequenceSource, frame_offsets

#: The camera pipeline's measured shares, recorded per frame for clips (``/motion/<name>``).
FRAME_SHARES = ("light_share", "clipped_share")
#: Draws of one clip before its settings are declared infeasible.
MAX_CLIP_DRAWS = 200


@dataclass(frozen=True)
class ClipsConfig(ConfigMixin):
    """Everything that fixes a clips dataset's arrays besides the seed.

    Attributes:
        pairs: the per-frame settings (size, camera, sensor, source); its motion model must be a
            camera (``camera3d``): its ``CameraConfig`` drives the shake.
        frames: frames per clip, in [1, 10000].
        fps: frames per second, in (0, 10000].
        shutter_angle: degrees, in (0, 360]: each frame is exposed ``shutter_angle / 360 / fps`` s.
        readout_s: rolling-shutter readout of the frame height, s (0: global shutter).
        margin_px: still pixels around the window on every side, for the content's movement
            across the clip plus the blur; a clip that moves further is redrawn.
        source_fps: frame rate of a video source (``blurgen.sources.sequences``: frame j of a clip
            reads sharp frame ``first + round(j * source_fps / fps)`` of one sequence); default
            240 for ``gopro:ROOT``, None (stills) otherwise; a directory with it set is a folder
            of frame sequences.
    """

    pairs: PairsConfig = field(default_factory=lambda: PairsConfig(motion=_camera_model_name()))
    frames: int = 8
    fps: float = 30.0
    shutter_angle: float = 180.0
    readout_s: float = 0.0
    margin_px: int = 224
    source_fps: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.pairs, PairsConfig):
            raise ValueError(f"pairs must be a PairsConfig, got {type(self.pairs).__name__}")
        if self.pairs.model.config_type is not CameraConfig:
            raise ValueError(f"clips need a camera motion model (camera3d), got {self.pairs.model.name}")
        frames, fps, angle, readout = check_clip_settings(self.frames, self.fps, self.shutter_angle, self.readout_s)
        for name, value in (("frames", frames), ("fps", fps), ("shutter_angle", angle), ("readout_s", readout)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "margin_px", check_index("margin_px", self.margin_px, 0, MAX_SIDE))
        source_fps = GOPRO_FPS if self.source_fps is None and gopro.split_spec(self.pairs.source) else self.source_fps
        if source_fps is not None:
            if self.pairs.source == "deadleaves":
                raise ValueError("source_fps applies to a video source (gopro:ROOT or a folder of frame sequences), "
                                 "got deadleaves")
            source_fps = check_number("source_fps", source_fps, 0.0, MAX_FPS, lo_open=True)
        object.__setattr__(self, "source_fps", source_fps)

    @property
    def width(self) -> int:
        return self.pairs.width

    @property
    def height(self) -> int:
        return self.pairs.height

    @property
    def kernel_size(self) -> int:
        return self.pairs.kernel_size

    @property
    def camera(self) -> CameraConfig:
        return self.pairs.camera

    @property
    def crop_size(self) -> tuple[int, int]:
        """(height, width) of each clip's still."""
        return self.height + 2 * self.margin_px, self.width + 2 * self.margin_px

    @property
    def offsets(self) -> np.ndarray | None:
        """The sequence frame each clip frame reads, after the clip's first (None for stills)."""
        return None if self.source_fps is None else frame_offsets(self.frames, self.fps, self.source_fps)

    def to_dict(self) -> dict[str, Any]:
        names = ("frames", "fps", "shutter_angle", "readout_s", "margin_px") + (
            ("source_fps",) if self.source_fps is not None else ())  # stills: the settings of before
        return {"clips": {name: getattr(self, name) for name in names}, **self.pairs.to_dict()}


def _camera_model_name() -> str:
    from blurgen.motion import registry

    return next(name for name in registry.names() if registry.get(name).config_type is CameraConfig)


def open_clip_source(config: ClipsConfig, warn: bool = True) -> Source | SequenceSource:
    """The still source, or the frame sequences long enough for a clip (``source_fps`` set)."""
    if config.offsets is not None:
        return SequenceSource(config.pairs.source, config.pairs.split, config.crop_size,
                              span=int(config.offsets[-1]) + 1, warn=warn)
    return open_source(config.pairs.source, config.pairs.split, min_size=config.crop_size, warn=warn)


def _stills(config: ClipsConfig, source: Source | SequenceSource, seed: int, index: int) -> tuple[Any, dict]:
    """Clip ``index``'s still (or one still per frame from a video source) and where it came from."""
    crop_h, crop_w = config.crop_size
    if isinstance(source, SequenceSource):
        stills, sequence, first, crop_y, crop_x = source.clip_stills(seed, index, config.offsets, crop_h, crop_w)
        return stills, {"source_index": sequence, "source_file": sequence, "source_frame": first,
                        "crop_y": crop_y, "crop_x": crop_x}
    still, source_index, crop_y, crop_x = source.crop_with_origin(seed, index, crop_h, crop_w)
    return still, {"source_index": source_index, "source_file": source_index, "crop_y": crop_y, "crop_x": crop_x}


def _planned(config: ClipsConfig, seed: int, index: int, draw: int) -> tuple[CameraClip, dict, ClipLayout | None]:
    """Draw ``draw`` of clip ``index`` and its layout; None when it does not fit, including a
    blur too wide or too uneven to render at all (no kernel size would hold it: very long
    exposures), which is redrawn like any other."""
    clip, params = random_camera_clip(1, config.frames, config.fps, config.shutter_angle, config.camera,
                                      seed=seed, start=index, readout_s=config.readout_s, draws=np.array([draw]))
    try:
        return clip, params, plan_clip(clip, 0, config.width, config.height, config.camera.size, config.margin_px)
    except ValueError:  # its advice would name a motion's fields, not the clip settings: see fitted_clip
        return clip, params, None


def fitted_clip(config: ClipsConfig, seed: int, index: int) -> tuple[CameraClip, dict, ClipLayout]:
    """Clip ``index``'s motion, parameters and layout: the first draw that fits."""
    for draw in range(MAX_CLIP_DRAWS):
        clip, params, layout = _planned(config, seed, index, draw)
        if layout is not None:
            return clip, params, layout
    exposure_s = config.shutter_angle / 360.0 / config.fps
    raise ValueError(f"clip {index}: no draw in {MAX_CLIP_DRAWS} (frames exposed {exposure_s:.3g} s) kept its blur "
                     f"within the kernel size {config.camera.size} and its movement within margin_px={config.margin_px}; use a larger "
                     "margin (--clip-margin), less shake (--shake-scale), shorter clips (--clips) or shorter "
                     "exposures (--fps, --shutter-angle)")


def _sharp_codes(sharp: np.ndarray, gain: float, gamma: str) -> np.ndarray:
    """The sharp frame after the sensor gain and clipping (as single pairs: a table)."""
    if gain == 1.0:
        return sharp
    return linear_to_srgb(decode_lut(gamma)[sharp] * np.float32(gain), gamma)


def _develop_clip(config: ClipsConfig, still: Any, layout: ClipLayout, rng: np.random.Generator,
                  blurred_out: np.ndarray, sharp_out: np.ndarray) -> dict:
    """Render a planned clip's frames into ``blurred_out``, ``sharp_out`` (T, H, W, 3) through the
    config's pipeline: one camera per clip (its values are ``rng``'s first draws), each frame's
    noise drawn from ``rng`` after the earlier frames' (frame j never depends on the clip length).
    Returns the camera's recorded values and the per-frame ones (camera pipeline: ``light_share``
    of the scene read for the frame's blur, ``clipped_share`` of its blurred pixels)."""
    blur = config.pairs.blur
    if config.pairs.pipeline == "camera":
        camera = CameraSensor(rng, blur, config.pairs.isp)
        shares = []
        for j, (raw, sharp) in enumerate(render_clip(still, layout, camera.unprocess)):
            blurred_out[j] = camera.develop_blurred(raw, rng)
            sharp_out[j] = camera.develop_sharp(camera.unprocess(sharp, count=False))
            shares.append(camera.params())
            camera.lights = camera.unprocessed = camera.clipped = camera.developed = 0  # the next frame's own
        per_frame = {name: np.array([frame.pop(name) for frame in shares], np.float32) for name in FRAME_SHARES}
        return shares[0], per_frame
    sensor = draw_blur_params(rng, blur)
    decode = lambda u8: srgb_to_linear(u8, blur.gamma)  # noqa: E731
    for j, (blurred, sharp) in enumerate(render_clip(still, layout, decode)):
        blurred_out[j] = sensor_output(blurred, sensor, rng, blur)
        sharp_out[j] = _sharp_codes(sharp, sensor["gain"], blur.gamma)
    return sensor, {}


def _clip_arrays(config: ClipsConfig, count: int) -> dict[str, Any]:
    t, h, w, k = config.frames, config.height, config.width, config.camera.size
    return {"blurred": np.empty((count, t, h, w, 3), np.uint8), "sharp": np.empty((count, t, h, w, 3), np.uint8),
            "kernel": np.empty((count, t, k, k), np.float32), "params": {}, "motion": {}}


def _put(store: dict, m: int, count: int, name: str, value: Any) -> None:
    value = np.asarray(value)
    if name not in store:
        store[name] = np.empty((count, *value.shape), value.dtype)
    store[name][m] = value


def make_clip_block(config: ClipsConfig, seed: int, start: int, count: int,
                    source: Source | None = None) -> dict[str, Any]:
    """Make clips ``start .. start + count - 1`` of the dataset ``(config, seed)``.

    Returns:
        ``blurred``, ``sharp``: uint8 ``(count, T, H, W, 3)``; ``kernel``: float32
        ``(count, T, k, k)`` (each frame's local kernel at the window centre); ``params``: name ->
        ``(count,)``; ``motion``: name -> ``(count, T, ...)`` (the ``CameraClip`` arrays and the
        per-frame values ``frame_kernel_radius_px``, ``window_margin_px``, ``max_angle_rad``,
        ``drift_rad``).
    """
    seed, start, count = check_index("seed", seed, 0), check_index("start", start, 0), check_index("count", count, 1)
    source = source or open_clip_source(config)
    block = _clip_arrays(config, count)
    for m in range(count):
        index = start + m
        clip, params, layout = fitted_clip(config, seed, index)
        still, origin = _stills(config, source, seed, index)
        rng = np.random.default_rng([seed, index, BLUR_STREAM])
        sensor, frame_values = _develop_clip(config, still, layout, rng, block["blurred"][m], block["sharp"][m])
        block["kernel"][m] = layout.kernels
        per_clip = {name: v[0] for name, v in params.items() if v.ndim == 1}
        per_clip.update(sensor, **origin, window_x=layout.origin[0], window_y=layout.origin[1],
                        still_x=layout.crop_origin[0], still_y=layout.crop_origin[1])
        for name, value in per_clip.items():
            _put(block["params"], m, count, name, value)
        per_frame = {**clip.arrays(), "window_margin_px": layout.margins, **frame_values}
        per_frame.update({name: v for name, v in params.items() if v.ndim == 2})
        for name, value in per_frame.items():
            _put(block["motion"], m, count, name, value[0] if value.ndim > 1 and value.shape[0] == 1 else value)
    block["params"] = {name: _param_dtype(name, v) for name, v in sorted(block["params"].items())}
    return block


def _param_dtype(name: str, values: np.ndarray) -> np.ndarray:
    ints = {"source_index", "source_file", "source_frame", "crop_y", "crop_x", "window_x", "window_y", "still_x", "still_y",
            "jpeg_quality", "redraws", "bayer_pattern"}
    if name in ints:
        return values.astype(np.int32)
    return values.astype(np.float32) if values.dtype.kind == "f" else values


class ClipMaker(PipelineMaker):
    """The block maker of a clips run (``make_dataset(maker=ClipMaker())``): ``make_clip_block``
    with the source opened once per process and checked as the pairs maker checks it."""

    @staticmethod
    def _pairs(config: Any) -> Any:
        return config.pairs

    @staticmethod
    def _open(config: Any, warn: bool) -> Any:
        return open_clip_source(config, warn=warn)

    def __call__(self, config: Any, seed: int, start: int, count: int) -> dict:
        if self._source is None:
            self._open_source(config)
        return make_clip_block(config, seed, start, count, source=self._source)
