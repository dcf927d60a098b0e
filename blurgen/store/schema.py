"""What a blurgen pairs file is: names, schema version, layout checks, attribute decoding.

Schema version 1 (``shake2d`` datasets)::

    /blurred   uint8   (N, H, W, 3)   one sample per chunk (fletcher32 checksum since 0.2)
    /sharp     uint8   (N, H, W, 3)
    /kernel    float32 (N, k, k)      k odd
    /params/<name>  1-D, one value per sample
    /source_files   str (M,)       the image files /params/source_file indexes (relative paths;
                                   absent for procedural sources)
    root attrs: schema_version, blurgen_version, created, command, config (JSON), seed,
                n_planned, n_written

Schema version 2 (``camera3d`` datasets) adds the camera motion of every sample, from which the
blur can be rendered again (``blurgen.camera.CameraMotion.from_arrays``), and ``/kernel`` is the
local kernel at the image centre::

    /motion/rotation     float32 (N, S, 3)  rotation vectors, rad, to the time-mean pose
    /motion/translation  float32 (N, S, 3)  camera centre, m
    /params/<name>: exposure_s, focal_px, depth_m, anchor_x, anchor_y (the rest of the motion),
                    window_x, window_y, ... instead of the kernel walk's values; frame_size in the
                    config's ``camera``.

Only the first ``n_written`` samples are complete; a file whose ``n_written < n_planned`` is an
incomplete (interrupted) dataset and reads as that many samples.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime, timezone
from typing import Any, Iterator

import numpy as np

from blurgen.core.common import BlurgenError, one_line
from blurgen.core.config import MAX_KERNEL_SIZE, MAX_SIDE
from blurgen.core.safe_files import hdf5_outside_reference
from blurgen.store import clip_schema

SCHEMA_VERSION = 1
CAMERA_SCHEMA_VERSION = 2
CLIP_SCHEMA_VERSION = clip_schema.CLIP_SCHEMA_VERSION
READABLE_VERSIONS = (SCHEMA_VERSION, CAMERA_SCHEMA_VERSION, CLIP_SCHEMA_VERSION)
MOTION = "motion"
IMAGE_DATASETS = ("blurred", "sharp")
SOURCE_FILES = "source_files"
#: Datasets stored one sample per chunk (copied chunk by chunk when assembling).
CHUNKED = (*IMAGE_DATASETS, "kernel")
REQUIRED_PARAMS = (
    "seed_index", "source_index", "exposure_fraction", "path_length_px", "anxiety",
    "centripetal", "gaussian_shake", "big_shake_prob", "gain", "noise_a", "noise_b",
    "jpeg_quality",
)
REQUIRED_CAMERA_PARAMS = ("seed_index", "source_index", "gain", "noise_a", "noise_b", "jpeg_quality",
                          "exposure_s", "focal_px", "depth_m", "anchor_x", "anchor_y")
REQUIRED_MOTION = ("rotation", "translation")
#: A dataset whose kernels come from a kernel bank (``make --kernels``) records the draws of the
#: bank instead of the random walk's.
REQUIRED_BANK_PARAMS = ("seed_index", "source_index", "gain", "noise_a", "noise_b", "jpeg_quality",
                        "bank_index", "transform", "scale")
#: What every dataset records, whatever its motion model (a plug-in model's own draws are optional).
REQUIRED_COMMON_PARAMS = ("seed_index", "source_index", "gain", "noise_a", "noise_b", "jpeg_quality")
REQUIRED_ATTRS = ("schema_version", "blurgen_version", "created", "command", "config", "seed",
                  "n_planned", "n_written")
#: What h5py raises on damaged files: besides OSError, a damaged heap or B-tree surfaces as
#: RuntimeError or KeyError, an unresolvable link as None (AttributeError on use), bad attribute
#: data as ValueError or TypeError. Caught where a file is opened and where it is read.
H5_ERRORS = (RuntimeError, KeyError, OSError, ValueError, AttributeError, TypeError)


class PairsFileError(BlurgenError):
    """A pairs file that cannot be read: missing, truncated, foreign or of another schema.

    The message names the file and the problem in one line.
    """


@contextlib.contextmanager
def reading(path: str, what: str) -> Iterator[None]:
    """Turn h5py errors raised inside into ``PairsFileError("<path>: <what>: <h5py text>")``."""
    try:
        yield
    except PairsFileError:
        raise
    except H5_ERRORS as exc:
        raise PairsFileError(f"{path}: {what}: {one_line(exc)}") from None


def attr_value(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value (str, int, float, list)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def attr(h5: Any, name: str, default: Any = None) -> Any:
    """Root attribute ``name`` of an open file, decoded (``default`` if absent)."""
    return attr_value(h5.attrs[name]) if name in h5.attrs else default


def text_attr(text: str) -> str:
    """``text`` made storable as an HDF5 (UTF-8) string: file names with bytes that are not UTF-8
    reach Python as lone surrogates, which HDF5 cannot encode; they become ``\\udcXX`` escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def now_iso() -> str:
    """Current UTC time, ISO 8601 to the second, e.g. ``2025-01-31T12:00:00+00:00``."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def source_file_names(h5: Any) -> list[str]:
    """``/source_files`` of an open pairs file as strings; [] when it has none (procedural source)."""
    if SOURCE_FILES not in h5:
        return []
    return [n.decode() if isinstance(n, bytes) else n for n in h5[SOURCE_FILES][...]]


def sample_range(h5: Any) -> tuple[int, int, int]:
    """``(sample_start, sample_stop, n_total)`` of a pairs file; a file without shard attributes
    is taken as the whole dataset."""
    n = int(attr(h5, "n_planned"))
    start = int(attr(h5, "sample_start", 0))
    return start, int(attr(h5, "sample_stop", start + n)), int(attr(h5, "n_total", n))


def file_settings(h5: Any) -> dict[str, Any]:
    """What fixes an open pairs file's arrays (compare with ``Manifest.settings()``)."""
    start, stop, n_total = sample_range(h5)
    return {"config": json.loads(attr(h5, "config")), "seed": int(attr(h5, "seed")),
            "n_total": n_total, "sample_start": start, "sample_stop": stop}


def is_complete(h5: Any) -> bool:
    return int(attr(h5, "n_written")) == int(attr(h5, "n_planned"))


def _check_images(h5: Any, path: str) -> int:
    """The image and kernel datasets' layout; returns N (samples allocated)."""
    for name in CHUNKED:
        if name not in h5:
            raise PairsFileError(f"{path}: missing dataset /{name}")
    blurred, sharp, kernel = h5["blurred"], h5["sharp"], h5["kernel"]
    # Sides are bounded by what blurgen makes: a sample is read whole, and a small crafted file
    # declaring 10^6 x 10^6 images asked numpy for 2.7 TiB (a MemoryError traceback).
    if (blurred.ndim != 4 or blurred.shape[-1] != 3 or blurred.dtype != np.uint8
            or not 1 <= min(blurred.shape[1:3]) <= max(blurred.shape[1:3]) <= MAX_SIDE):
        raise PairsFileError(f"{path}: /blurred must be uint8 (N, H, W, 3) with 1 <= H, W <= {MAX_SIDE}, "
                             f"got {blurred.dtype} {blurred.shape}")
    if sharp.shape != blurred.shape or sharp.dtype != np.uint8:
        raise PairsFileError(f"{path}: /sharp {sharp.dtype} {sharp.shape} does not match /blurred {blurred.shape}")
    if (kernel.ndim != 3 or kernel.shape[0] != blurred.shape[0] or kernel.dtype != np.float32
            or kernel.shape[1] != kernel.shape[2] or kernel.shape[1] % 2 == 0
            or kernel.shape[1] > MAX_KERNEL_SIZE):
        raise PairsFileError(f"{path}: /kernel must be float32 (N, k, k) with k odd, at most "
                             f"{MAX_KERNEL_SIZE}, got {kernel.dtype} {kernel.shape}")
    return blurred.shape[0]


def per_sample_datasets(h5: Any) -> list[str]:
    """The datasets stored one sample per chunk: images, kernels and (schema 2) the motion."""
    motion = h5.get(MOTION)
    return [*CHUNKED, *(f"{MOTION}/{name}" for name in (motion or {}))]


def _check_motion(h5: Any, path: str, n: int) -> None:
    import h5py

    motion = h5.get(MOTION)
    if motion is None:
        raise PairsFileError(f"{path}: schema 2 needs the group /{MOTION}")
    missing = [m for m in REQUIRED_MOTION if m not in motion]
    if missing:
        raise PairsFileError(f"{path}: missing /{MOTION}/{f', /{MOTION}/'.join(missing)}")
    rotation = motion["rotation"]
    if rotation.ndim != 3 or rotation.shape[0] != n or rotation.shape[2] != 3 or rotation.shape[1] < 2:
        raise PairsFileError(f"{path}: /{MOTION}/rotation must be (N, steps, 3), got {rotation.shape}")
    for name, ds in motion.items():
        if ds is None or ds.shape[:1] != (n,):
            raise PairsFileError(f"{path}: /{MOTION}/{name} must hold one entry per sample ({n})")
        if not isinstance(ds, h5py.Dataset) or ds.dtype.kind != "f" or ds.shape != rotation.shape:
            raise PairsFileError(f"{path}: /{MOTION}/{name} must be a float array shaped like /{MOTION}/rotation "
                                 f"{rotation.shape}")


def _check_params(h5: Any, path: str, n: int, required: tuple[str, ...]) -> None:
    params = h5.get("params")
    if params is None:
        raise PairsFileError(f"{path}: missing group /params")
    missing = [p for p in required if p not in params]
    if missing:
        raise PairsFileError(f"{path}: missing /params/{', /params/'.join(missing)}")
    for name, ds in params.items():
        if ds is None:  # h5py gives None for a link it cannot resolve (damaged metadata)
            raise PairsFileError(f"{path}: /params/{name} is unreadable (damaged HDF5 structure)")
        if ds.ndim != 1 or ds.shape[0] != n:
            raise PairsFileError(f"{path}: /params/{name} has shape {ds.shape}, expected ({n},)")


def validate_layout(h5: Any, path: str) -> int:
    """Check an open h5py file against its schema (1 or 2); return ``n_written``. Raises
    PairsFileError."""
    attrs = h5.attrs
    if "schema_version" not in attrs:
        raise PairsFileError(f"{path}: not a blurgen pairs file (no schema_version attribute)")
    version = attr_value(attrs["schema_version"])
    if version not in READABLE_VERSIONS:
        raise PairsFileError(f"{path}: schema_version {version} is not supported (this blurgen reads "
                             f"{' and '.join(map(str, READABLE_VERSIONS))})")
    missing = [a for a in REQUIRED_ATTRS if a not in attrs]
    if missing:
        raise PairsFileError(f"{path}: missing root attribute(s) {', '.join(missing)}")
    n = _check_clip_layout(h5, path) if version == CLIP_SCHEMA_VERSION else _check_images(h5, path)
    n_written = int(attr_value(attrs["n_written"]))
    if not 0 <= n_written <= n:
        raise PairsFileError(f"{path}: n_written={n_written} outside 0..{n}")
    if version == CAMERA_SCHEMA_VERSION:
        _check_motion(h5, path, n)
    _check_params(h5, path, n, _required_params(version, attrs))
    return n_written


def _check_clip_layout(h5: Any, path: str) -> int:
    """Schema 3 (clips, ``blurgen.store.clip_schema``): images, kernels and motion; returns N."""
    for name in CHUNKED:
        if name not in h5:
            raise PairsFileError(f"{path}: missing dataset /{name}")
    blurred, sharp, kernel = h5["blurred"], h5["sharp"], h5["kernel"]
    problem = (clip_schema.images_problem(blurred.shape, sharp.shape, kernel.shape, blurred.dtype, kernel.dtype,
                                          MAX_SIDE, MAX_KERNEL_SIZE)
               or clip_schema.motion_problem(h5.get(MOTION), blurred.shape[0], blurred.shape[1]))
    if problem:
        raise PairsFileError(f"{path}: {problem}")
    return blurred.shape[0]


def _required_params(version: int, attrs: Any) -> tuple[str, ...]:
    if version == CLIP_SCHEMA_VERSION:
        return clip_schema.REQUIRED_CLIP_PARAMS
    if version == CAMERA_SCHEMA_VERSION:
        return REQUIRED_CAMERA_PARAMS
    try:
        config = json.loads(attr_value(attrs["config"]))
        banked, plugin = bool(config.get("kernel_bank")), "motion" in config
    except (TypeError, ValueError, AttributeError):
        banked = plugin = False
    if plugin:  # a schema-1 file that names its motion model: one of the plug-in models
        return REQUIRED_COMMON_PARAMS
    return REQUIRED_BANK_PARAMS if banked else REQUIRED_PARAMS


def open_validated(path: str) -> tuple[Any, int]:
    """Open ``path`` with h5py and check the schema; returns ``(h5py.File, n_written)``.

    Every failure is a one-line PairsFileError naming the file; the handle is closed on failure.
    """
    import h5py  # local: keeps `import blurgen` light

    if not os.path.exists(path):
        raise PairsFileError(f"{path}: no such file")
    if os.path.isdir(path):
        raise PairsFileError(f"{path}: is a folder, not a pairs file")
    if not os.path.isfile(path):  # a FIFO or device: HDF5 would block or read for ever
        raise PairsFileError(f"{path}: not a regular file")
    with reading(path, "not a readable HDF5 file (truncated or foreign)"):
        h5 = h5py.File(path, "r")
    try:
        with reading(path, "damaged HDF5 structure"):
            # Before any dataset is read (links are not followed); a virtual merge's declared shards
            # (each checked to be the regular, readable shard that was merged) are its only allowed
            # sources.
            check_virtual_sources(h5, path)
            outside = hdf5_outside_reference(h5, _declared_shards(h5, path))
            if outside:
                raise PairsFileError(f"{path}: {outside}; blurgen reads no file through another, so keep all "
                                     "data inside the pairs file")
            return h5, validate_layout(h5, path)
    except BaseException:
        h5.close()
        raise


def _declared_shards(h5: Any, path: str) -> frozenset:
    """The shards a virtual merge declares (root attribute ``virtual_sources``), as its virtual
    datasets name them; empty for any other file, or for shards that are not regular files."""
    try:
        declared = json.loads(attr_value(h5.attrs["virtual_sources"])) if "virtual_sources" in h5.attrs else []
    except (TypeError, ValueError):
        return frozenset()
    folder = os.path.dirname(os.path.abspath(path))
    if not isinstance(declared, list) or not all(isinstance(d, str) for d in declared):
        return frozenset()
    return frozenset(os.path.normpath(d) for d in declared
                     if not os.path.exists(os.path.join(folder, d)) or os.path.isfile(os.path.join(folder, d)))


def open_checked(path: str) -> Any:
    """``open_validated`` without the count: an open, validated h5py file."""
    return open_validated(path)[0]


def finished_with(path: str, settings: dict[str, Any]) -> bool:
    """Whether ``path`` is a complete, readable pairs file made with ``settings``
    (``Manifest.settings()``): then a parts folder beside it is what a run killed after its final
    rename left behind, not unfinished work."""
    if not os.path.isfile(path):
        return False
    try:
        with open_checked(path) as h5, reading(path, "unreadable root attributes"):
            return is_complete(h5) and file_settings(h5) == settings
    except PairsFileError:
        return False


#: Root attribute of a virtual merge: JSON list of its shards, relative to its folder.
VIRTUAL_SOURCES = "virtual_sources"


def virtual_sources(h5: Any) -> list[str] | None:
    """The shards a virtual merge references (relative paths), None for any other file."""
    value = h5.attrs.get(VIRTUAL_SOURCES)
    return None if value is None else json.loads(attr_value(value))


def check_virtual_sources(h5: Any, path: str, _seen: frozenset = frozenset()) -> None:
    """``PairsFileError`` naming the first shard of virtual merge ``h5`` (at ``path``) that is
    missing, not a regular file, not a readable HDF5 file, or not the shard that was merged: HDF5
    would read the first three as zeros or fail mid-read, and silently serve another dataset's
    samples for the last (a shard of another seed, settings or sample range copied over it). A
    shard that is itself a virtual merge is checked the same way."""
    sources = virtual_sources(h5)
    folder = os.path.dirname(os.path.abspath(path))
    ranges = _mapped_ranges(h5) if sources else {}
    for source in sources or []:
        full = os.path.join(folder, source)
        if not os.path.exists(full):
            raise PairsFileError(f"{path}: shard {source} of this virtual merge is missing (it reads the shards "
                                 "in place; put it back, or merge again with --copy for a standalone file)")
        if not os.path.isfile(full):
            raise PairsFileError(f"{path}: shard {source} of this virtual merge is not a regular file; put the "
                                 "shard back, or merge again with --copy for a standalone file")
        _check_shard(h5, path, source, full, ranges.get(os.path.normpath(source)), _seen)


def _mapped_ranges(h5: Any) -> dict[str, tuple[int, int]]:
    """Sample range ``[start, stop)`` that ``/blurred`` maps from each source file (normalised)."""
    if "blurred" not in h5 or not h5["blurred"].is_virtual:
        return {}
    out = {}
    for mapping in h5["blurred"].virtual_sources():
        low, high = mapping.vspace.get_select_bounds()
        out[os.path.normpath(mapping.file_name)] = (int(low[0]), int(high[0]) + 1)
    return out


_IDENTITY = ("seed", "config", "n_total")


def _check_shard(h5: Any, path: str, source: str, full: str, mapped: tuple[int, int] | None,
                 seen: frozenset) -> None:
    import h5py

    real = os.path.realpath(full)
    if real in seen or len(seen) > 16:
        raise PairsFileError(f"{path}: shard {source} of this virtual merge refers back to itself")
    again = "put the original shard back, or merge again"
    try:
        shard = h5py.File(full, "r")
    except OSError:
        raise PairsFileError(f"{path}: shard {source} of this virtual merge is not a readable pairs file "
                             f"(truncated or foreign); {again}") from None
    with shard:
        found = {key: attr_value(shard.attrs.get(key)) for key in (*_IDENTITY, "sample_start", "sample_stop")}
        want = {key: attr_value(h5.attrs.get(key)) for key in _IDENTITY}
        if mapped is not None:
            want.update(sample_start=str(mapped[0]), sample_stop=str(mapped[1]))
        differ = [key for key in want if str(found[key]) != str(want[key])]
        if differ:
            raise PairsFileError(f"{path}: shard {source} of this virtual merge is not the shard that was merged "
                                 f"(its {', '.join(differ)} differ: it holds samples {found['sample_start']}.."
                                 f"{found['sample_stop']} of seed {found['seed']}); {again}")
        if virtual_sources(shard) is not None:
            check_virtual_sources(shard, full, seen | {real, os.path.realpath(path)})
