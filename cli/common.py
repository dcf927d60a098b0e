"""Helpers shared by the commands: option types, option checks and output checks."""

from __future__ import annotations

import math
import os

import click

from blurgen.core.common import BlurgenError, check_can_create, one_line
from blurgen.core.config import KernelConfig, is_off


def parse_float_list(value: str, name: str) -> tuple[float, ...]:
    """'0.1,0.5,1' -> (0.1, 0.5, 1.0); a click usage error (exit 2) otherwise."""
    try:
        items = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"expected comma-separated numbers, got {value!r}", param_hint=name) from None
    if not items:
        raise click.BadParameter("expected at least one number", param_hint=name)
    return items


def apply_options(func, options: list):
    """Decorate ``func`` with click ``options``, listed in the order ``--help`` shows them."""
    for option in reversed(options):
        func = option(func)
    return func


def kernel_model_options(func):
    """The KernelConfig options shared by `kernels` and `make`."""
    defaults = KernelConfig()
    options = [
        click.option("--kernel-size", type=int, default=defaults.size, show_default=True,
                     help="Odd kernel side in pixels (>= 3)."),
        click.option("--length-px", type=float, default=defaults.length_px, show_default=True,
                     help="Camera path length in pixels over a full exposure."),
        click.option("--steps", type=int, default=defaults.steps, show_default=True,
                     help="Samples along each path."),
        click.option("--exposures", default=",".join(f"{e:g}" for e in defaults.exposures),
                     show_default=True, help="Exposure fractions to draw from, e.g. 0.1,0.5,1."),
        click.option("--anxiety", default=",".join(f"{a:g}" for a in defaults.anxiety),
                     show_default=True, help="Shake strengths to draw from, each in [1e-6, 0.1]."),
        click.option("--blur-length-px", default=None, metavar="LOW,HIGH",
                     help="Blur length per sample, drawn log-uniformly in [LOW, HIGH] px (0.01-1e4), or off. "
                          "shake2d: each path keeps its shape and is scaled to it; camera3d: the exposure (within "
                          "--exposure-s) is chosen so the frame centre's blur path is that long. [default: make "
                          "with shake2d: 1,32, off when --length-px is given; make with camera3d: 1,16 with "
                          "--exposure-s 0.0005,1, both off when either is given (each trains restorers that do "
                          "better on real shake, see README); kernels: off (paths --length-px long, camera "
                          "exposures log-uniform)]."),
    ]
    return apply_options(func, options)


class MotionName(click.ParamType):
    """A motion model: a registered name (``shake2d``, ``camera3d``, ...) or ``module:attribute``."""

    name = "motion"

    def convert(self, value, param, ctx):
        from blurgen.motion import registry

        if value == registry.BANK:
            self.fail("kernels from a file: use --kernels PATH", param, ctx)
        try:
            registry.get(value)
            return value
        except ValueError as exc:
            self.fail(str(exc), param, ctx)

    def get_metavar(self, param, ctx=None):
        from blurgen.motion.registry import BANK, BUILTIN

        return "[" + "|".join(name for name in BUILTIN if name != BANK) + "|module:attr]"


#: How each model option's command-line text becomes a value, and its flag.
OPTION_PARSERS = {
    "exposures": lambda v: parse_float_list(v, "--exposures"),
    "anxiety": lambda v: parse_float_list(v, "--anxiety"),
    "frame_size": lambda v: parse_size(v, "--frame-size"),
    "focal_35mm": lambda v: parse_range(v, "--focal-35mm"),
    "exposure_s": lambda v: parse_range(v, "--exposure-s"),
    "depth_m": lambda v: parse_range(v, "--depth-m"),
    "blur_length_px": lambda v: None if v is None or is_off(v) else parse_range(v, "--blur-length-px"),
}


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _owners(name: str) -> list[str]:
    """The models (built-in and registered) that read command-line option ``name``."""
    from blurgen.motion import registry

    return [model for model in registry.names() if name in registry.get(model).cli_options]


#: The options that belong to one motion model or another (the walk's, then the camera's).
MODEL_OPTIONS = ("length_px", "steps", "exposures", "anxiety", "blur_length_px", "frame_size", "focal_35mm", "exposure_s",
                 "shake_scale", "roll_scale", "translation_mps", "depth_m", "camera_steps")


def motion_options(func):
    """``--motion`` and the CameraConfig options shared by `kernels` and `make`."""
    from blurgen.camera.config import CameraConfig

    d = CameraConfig()
    options = [
        click.option("--motion", type=MotionName(), default="shake2d", show_default=True,
                     help="shake2d: one random-walk kernel per image (the DeblurGAN recipe); camera3d: a rotating "
                          "hand-held camera fitted on recorded gyroscope data, blur varying across the image; "
                          "module:attr: a MotionModel of your own (trusted code)."),
    ]
    pair = "{:g},{:g}".format
    camera = [  # (flag, type, default, help): camera3d's own options
        ("--frame-size", str, "{}x{}".format(*d.frame_size), "the camera frame WxH (each 32-16384 px); "
         "outputs are windows of it."),
        ("--focal-35mm", str, pair(*d.focal_35mm), "35 mm-equivalent focal length range low,high in [4, 2000] mm."),
        ("--exposure-s", str, pair(*d.exposure_s), "exposure time range low,high in [1e-5, 10] s (log-uniform; "
         "make: 0.0005,1 with its --blur-length-px default unless either is given)."),
        ("--shake-scale", float, d.shake_scale, "multiplies the recorded hand shake, in [0, 100]."),
        ("--roll-scale", float, d.roll_scale, "multiplies the roll (about the optical axis), in [0, 100]."),
        ("--translation-mps", float, d.translation_mps, "rms translation speed per axis, m/s, in [0, 10] "
         "(0: rotation only)."),
        ("--depth-m", str, pair(*d.depth_m), "scene distance range low,high in [0.01, 1e6] m (with translation)."),
        ("--camera-steps", int, d.steps, "poses per exposure, in [2, 100000]."),
    ]
    options += [click.option(flag, type=kind, default=default, show_default=True, help="camera3d: " + text)
                for flag, kind, default, text in camera]
    return apply_options(func, options)


def check_motion_options(ctx: click.Context, motion: str) -> None:
    """Usage error for an option that the chosen motion model does not read."""
    from blurgen.motion import registry

    reads = set(registry.get(motion).cli_options)
    source = click.core.ParameterSource.COMMANDLINE
    for name in MODEL_OPTIONS:
        if name not in reads and ctx.get_parameter_source(name) == source:
            owners = _owners(name)
            raise click.BadParameter(f"applies to --motion {' or '.join(owners) or 'other models'} only, not {motion}",
                                     param_hint=_flag(name))


def motion_config_from_options(motion: str, kernel_size: int, options: dict):
    """The motion model's settings from the command line (and a check that its kernel size fits
    its paths); bad values are usage errors (exit 2) naming the option."""
    from blurgen.motion import registry

    model = registry.get(motion)
    values = {name: OPTION_PARSERS.get(name, lambda v: v)(options[name])
              for name in model.cli_options if name in options}
    try:
        return model.config_from_options(kernel_size, values)
    except ValueError as exc:
        message = str(exc)
        fields = {"size": "--kernel-size", "steps": "--camera-steps" if "camera_steps" in values else "--steps"}
        fields.update({name: _flag(name) for name in values if name not in fields})
        hint = next((flag for field, flag in fields.items() if message.startswith(field)), None)
        raise click.BadParameter(message, param_hint=hint) from None


def parse_size(value: str, hint: str = "--size") -> tuple[int, int]:
    """'256' -> (256, 256); '1280x720' -> (1280, 720) as (width, height); usage error otherwise."""
    import re

    from blurgen.core.config import MAX_SIDE, MIN_SIDE

    match = re.fullmatch(r"\s*(\d{1,9})\s*(?:[xX]\s*(\d{1,9})\s*)?", value or "")
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:36] + "...'"
    if not match:
        raise click.BadParameter(f"expected N or WxH (e.g. 256 or 1280x720), got {shown}", param_hint=hint)
    width = int(match.group(1))
    height = int(match.group(2)) if match.group(2) else width
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE:
            raise click.BadParameter(f"each side must be in [{MIN_SIDE}, {MAX_SIDE}] px, got {shown}", param_hint=hint)
    return width, height


def check_tile(tile: int) -> None:
    """Usage error (exit 2) for a tile side the generator cannot use: 0 (whole images) or >= 32."""
    if tile and tile < 32:
        raise click.BadParameter("must be 0 (whole images) or >= 32", param_hint="--tile")


def check_not_same_file(path: str, dataset: str, param_hint: str) -> None:
    """Usage error (exit 2) when an extra output (a preview PNG) would overwrite the dataset."""
    if os.path.realpath(path) == os.path.realpath(dataset):
        raise click.BadParameter(f"{path} is the dataset itself; choose another file", param_hint=param_hint)


def check_output(path: str, overwrite: bool = True, replaceable: bool = False) -> None:
    """Failure (exit 1) when ``path`` cannot be written: its folder is missing or read-only, it is
    a folder, or it exists and neither ``overwrite`` nor ``replaceable`` allows replacing it."""
    try:
        check_can_create(path, overwrite=overwrite or replaceable)
    except BlurgenError as exc:
        raise click.ClickException(one_line(exc)) from None


def announce_first_compile(*modules: str) -> None:
    """Say on stderr that this run compiles blurgen's kernels first (once per install and machine:
    numba caches them), so a quiet 10-60 s start is not mistaken for a hang."""
    from blurgen.core._jit import cache_is_warm

    if not cache_is_warm(*modules):
        click.echo("blurgen: first run on this machine: compiling the kernels (10-60 s, cached afterwards)",
                   err=True)


def is_png(path: str) -> bool:
    """Whether ``path`` is a file that starts like a PNG picture (a preview one may replace)."""
    try:
        with open(path, "rb") as handle:
            return handle.read(8) == b"\x89PNG\r\n\x1a\n"
    except OSError:
        return False


def parse_range(value: str, name: str, integer: bool = False) -> tuple:
    """'1e-4,1e-3' -> (0.0001, 0.001); one number 'v' -> (v, v); a usage error (exit 2) otherwise."""
    items = parse_float_list(value, name)
    if len(items) == 1:
        items = items * 2
    if len(items) != 2:
        raise click.BadParameter(f"expected 'low,high' or one number, got {value!r}", param_hint=name)
    if integer:
        if any(not math.isfinite(v) or v != int(v) for v in items):
            raise click.BadParameter(f"expected integers, got {value!r}", param_hint=name)
        items = tuple(int(v) for v in items)
    return items


#: The BlurConfig options of `make` (their parameter names).
BLUR_OPTIONS = ("gamma", "saturation", "gain_prob", "gain_max", "noise", "noise_a", "noise_b", "jpeg_quality")


def blur_model_options(func):
    """The BlurConfig options of `make` (the camera model around the blur)."""
    from blurgen.blur import GAMMAS, NOISE_MODELS, BlurConfig

    defaults = BlurConfig()
    options = [
        click.option("--gamma", type=click.Choice(GAMMAS), default=defaults.gamma, show_default=True,
                     help="Transfer curve: exact sRGB, or a 2.2 power as GoPro's blur_gamma."),
        click.option("--saturation/--no-saturation", default=defaults.saturation, show_default=True,
                     help="Scale some samples' linear light by a gain > 1 so highlights clip."),
        click.option("--gain-prob", type=float, default=defaults.gain_prob, show_default=True,
                     help="Fraction of samples with a gain > 1, in [0, 1]."),
        click.option("--gain-max", type=float, default=defaults.gain_max, show_default=True,
                     help="Gain drawn uniformly in [1, GAIN_MAX]."),
        click.option("--noise", type=click.Choice(NOISE_MODELS), default=defaults.noise, show_default=True,
                     help="Sensor noise on the blurred image: variance a*x + b."),
        click.option("--noise-a", default="{:g},{:g}".format(*defaults.noise_a_range), show_default=True,
                     help="Range 'low,high' of the shot-noise factor a (linear light)."),
        click.option("--noise-b", default="{:g},{:g}".format(*defaults.noise_b_range), show_default=True,
                     help="Range 'low,high' of the read-noise variance b (linear light)."),
        click.option("--jpeg-quality", default="off", show_default=True,
                     help="JPEG round trip of the blurred image at a quality in 'low,high' (1-100), or off."),
    ]
    return apply_options(func, options)


def blur_config_from_options(gamma: str, saturation: bool, gain_prob: float, gain_max: float, noise: str,
                             noise_a: str, noise_b: str, jpeg_quality: str):
    """Build a BlurConfig from the CLI options; bad values are usage errors (exit 2)."""
    from blurgen.blur import BlurConfig

    names = {"gain_prob": "--gain-prob", "gain_max": "--gain-max", "noise_a_range": "--noise-a",
             "noise_b_range": "--noise-b", "jpeg_quality_range": "--jpeg-quality", "gamma": "--gamma",
             "noise": "--noise"}
    jpeg = None if jpeg_quality.strip().lower() in ("off", "none", "") else \
        parse_range(jpeg_quality, "--jpeg-quality", integer=True)
    try:
        return BlurConfig(gamma=gamma, saturation=saturation, gain_prob=gain_prob, gain_max=gain_max,
                          noise=noise, noise_a_range=parse_range(noise_a, "--noise-a"),
                          noise_b_range=parse_range(noise_b, "--noise-b"), jpeg_quality_range=jpeg)
    except ValueError as exc:
        message = str(exc)
        hint = next((flag for field, flag in names.items() if message.startswith(field)), None)
        raise click.BadParameter(message, param_hint=hint) from None


def require_torch(torchvision: bool = False):
    """Import torch (and torchvision if asked) or fail with a one-line install hint (exit 1);
    returns the torch module."""
    try:
        import torch

        if torchvision:
            import torchvision
    except ImportError:
        raise click.ClickException("this command needs PyTorch: install blurgen[train] "
                                   "(pip install 'blurgen[train]')") from None
    return torch


def resolve_device(device: str | None):
    """'auto'/None -> cuda if available else cpu (``blurgen.deblur.distributed.resolve_device``);
    an unknown, unavailable or unusable device is a usage error."""
    from blurgen.deblur.distributed import resolve_device as resolve

    try:
        return resolve(device or "auto")
    except RuntimeError:  # torch.device() could not parse it
        raise click.BadParameter(f"{device!r} is not a torch device", param_hint="--device") from None
    except ValueError as exc:  # CUDA absent, or a device this build cannot use (e.g. mps)
        raise click.BadParameter(str(exc), param_hint="--device") from None


class RegularFile(click.Path):
    """An existing regular file (a FIFO or device would block or never end when read)."""

    def __init__(self) -> None:
        super().__init__(exists=True, dir_okay=False)

    def convert(self, value, param, ctx):
        path = super().convert(value, param, ctx)
        if not os.path.isfile(path):
            self.fail(f"{path!r} is not a regular file", param, ctx)
        return path


#: The camera pipeline's options of `make` (their parameter names), and what each sRGB-only
#: option is replaced by under ``--pipeline camera``.
CAMERA_OPTIONS = ("bayer", "bit_depth", "shot_noise", "light_threshold", "light_boost")
REPLACED_IN_CAMERA = {"gain_prob": "--light-threshold/--light-boost", "gain_max": "--light-threshold/--light-boost",
                      "noise_a": "--shot-noise", "noise_b": "--shot-noise (read noise follows from it)"}


def camera_pipeline_options(func):
    """``--pipeline`` and the camera pipeline's options of `make`."""
    from blurgen.blur.isp import PIPELINES, IspConfig

    d = IspConfig()
    pair = "{:g},{:g}".format
    options = [
        click.option("--pipeline", type=click.Choice(PIPELINES), default="srgb", show_default=True,
                     help="Image formation: srgb (blur and noise in linear sRGB) or camera (a camera's RAW "
                          "pipeline: colour matrix, white balance, light sources, Bayer mosaic, RAW noise, "
                          "demosaicing)."),
        click.option("--bayer", default=",".join(d.bayer_patterns), show_default=True,
                     help="camera: Bayer patterns drawn from (RGGB, BGGR, GRBG, GBRG)."),
        click.option("--bit-depth", type=int, default=d.bit_depth, show_default=True,
                     help="camera: RAW bit depth, 8-16."),
        click.option("--shot-noise", default=pair(*d.shot_noise_range), show_default=True,
                     help="camera: shot-noise range low,high (RAW units, log-uniform); read noise follows."),
        click.option("--light-threshold", default=pair(*d.light_threshold_range), show_default=True,
                     help="camera: sRGB value range low,high in [0.5, 1] from which pixels are light sources."),
        click.option("--light-boost", default=pair(*d.light_boost_range), show_default=True,
                     help="camera: light sources' brightness over the clip, range low,high in [1, 1000]."),
    ]
    return apply_options(func, options)


def isp_config_from_options(ctx: click.Context, options: dict):
    """The IspConfig of the command line; usage errors (exit 2) for a camera option with
    ``--pipeline srgb``, an sRGB-only option with ``--pipeline camera``, or a bad value."""
    from blurgen.blur.isp import IspConfig

    given = {name for name in (*CAMERA_OPTIONS, *REPLACED_IN_CAMERA)
             if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
    if options["pipeline"] != "camera":
        for name in CAMERA_OPTIONS:
            if name in given:
                raise click.BadParameter("applies to --pipeline camera only", param_hint=_flag(name))
        return IspConfig()
    for name, replacement in REPLACED_IN_CAMERA.items():
        if name in given:
            raise click.BadParameter(f"does not apply to --pipeline camera; use {replacement}", param_hint=_flag(name))
    values = {"bayer_patterns": tuple(p.strip().upper() for p in options["bayer"].split(",") if p.strip()),
              "bit_depth": options["bit_depth"],
              "shot_noise_range": parse_range(options["shot_noise"], "--shot-noise"),
              "light_threshold_range": parse_range(options["light_threshold"], "--light-threshold"),
              "light_boost_range": parse_range(options["light_boost"], "--light-boost")}
    flags = {"bayer_patterns": "--bayer", "bit_depth": "--bit-depth", "shot_noise_range": "--shot-noise",
             "light_threshold_range": "--light-threshold", "light_boost_range": "--light-boost"}
    try:
        return IspConfig(**values)
    except ValueError as exc:
        hint = next((flag for field, flag in flags.items() if str(exc).startswith(field)), None)
        raise click.BadParameter(str(exc), param_hint=hint) from None
