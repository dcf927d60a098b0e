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
                    CameraMotion.from_arrays(pairs.motion_arrays(slice(start, min(n, start + _BATCH))), frame)
                except ValueError as exc:
                    return f"/motion of samples {start}..{min(n, start + _BATCH) - 1}: {exc}"
    except (PairsFileError, KeyError, IndexError, AttributeError):
        return None
    return None
