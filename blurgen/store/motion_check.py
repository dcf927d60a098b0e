"""The stored camera motion of a pairs file (schema 2) checked the one way motions are checked:
``blurgen.camera.CameraMotion`` (finite, bounded, right shapes) over every sample.

Example:
    >>> motion_problem("no-such.h5") is None  # no readable motion: the schema check says why
    True
"""

from __future__ import annotations

import os

#: Samples checked per read.
_BATCH = 256


def motion_problem(path: str) -> str | None:
    """Why the motion stored in ``path`` cannot be rendered again (the first bad sample), or
    None (also for a file without motion, or one the schema check refuses anyway)."""
    from blurgen.camera.motion import CameraMotion
    from blurgen.store.reader import PairsFile
    from blurgen.store.schema import PairsFileError

    if not os.path.isfile(path):
        return None
    try:
        with PairsFile(path) as pairs:
            if not pairs.has_motion:
                return None
            frame = tuple(pairs.attrs.get("config_dict", {}).get("camera", {}).get("frame_size", ()))
            n = int(pairs.attrs["n_written"])
            for start in range(0, n, _BATCH):
                try:
                    CameraMotion.from_arrays(_per_frame(pairs.motion_arrays(slice(start, min(n, start + _BATCH)))),
                                             frame)
                except ValueError as exc:
                    return f"/motion of samples {start}..{min(n, start + _BATCH) - 1}: {exc}"
    except (PairsFileError, KeyError, IndexError, AttributeError):
        return None
    return None


def _per_frame(arrays: dict) -> dict:
    """A clips file's motion (schema 3: poses ``(n, T, S, 3)``) as ``n * T`` exposures, each with
    its clip's numbers; a pairs file's as it is."""
    import numpy as np

    rotation = arrays["rotation"]
    if rotation.ndim != 4:
        return arrays
    frames = rotation.shape[1]
    out = {name: arrays[name].reshape(-1, *arrays[name].shape[2:]) for name in ("rotation", "translation")}
    for name, value in arrays.items():
        if name not in out:
            out[name] = np.repeat(np.asarray(value), frames, axis=0)
    return out
