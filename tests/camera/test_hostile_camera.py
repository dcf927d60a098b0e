"""Issue 23, F1 and F5: hostile camera motions never reach compiled code out of range, and long
validation of camera settings is bounded or says what it is doing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

#: Runs in a fresh process with bounds checks on: every case must be refused with ValueError
#: (an IndexError there is an out-of-bounds access that unchecked compiled code would make).
_F1_SCRIPT = textwrap.dedent("""
    import numpy as np
    from blurgen.camera.motion import CameraMotion
    from blurgen.camera.kernels import local_kernels
    from blurgen.camera.render import blur_camera

    def motion(**change):
        t = np.linspace(0, 1, 8, dtype=np.float32)
        rot = np.zeros((1, 8, 3), np.float32); rot[0, :, 1] = 0.002 * (t - 0.5)
        arrays = dict(rotation=rot, translation=np.zeros((1, 8, 3), np.float32),
                      focal_px=np.array([1000.0]), depth_m=np.array([np.inf]),
                      anchor=np.full((1, 2), 0.5), exposure_s=np.array([0.01]))
        arrays.update(change)
        return CameraMotion.from_arrays(arrays, (320, 240))

    trans = np.zeros((1, 8, 3), np.float32); trans[0, :, 0] = np.linspace(-1e4, 1e4, 8)
    cases = {
        "positions 1e300": lambda: local_kernels(motion(), [[1e300, 1e300]], size=65),
        "positions at 1e20": lambda: local_kernels(motion(), [[1e20, 0.0]], size=65),
        "focal 1e30 from a file": lambda: motion(focal_px=np.array([1e30])),
        "focal 1e30 rendered": lambda: blur_camera(np.ones((64, 64, 3), np.float32),
                                                   motion(focal_px=np.array([1e30]))),
        "huge translation, near plane": lambda: local_kernels(
            motion(translation=trans, depth_m=np.array([1e-6])), [[10.0, 10.0]], size=65),
        "huge translation rendered": lambda: blur_camera(
            np.ones((64, 64, 3), np.float32), motion(translation=trans, depth_m=np.array([1e-6]))),
        "NaN rotation": lambda: motion(rotation=np.full((1, 8, 3), np.nan, np.float32)),
    }
    for name, case in cases.items():
        try:
            case()
        except ValueError as exc:
            print("refused", name, "|", str(exc).splitlines()[0])
        else:
            print("ACCEPTED", name)
    from blurgen.camera import _project_jit as pj
    for bad in (np.nan, np.inf, -np.inf, 1e20, -1e20):
        offs = np.array([[0.0, 0.0], [bad, 0.0]])
        out = np.zeros((5, 5), np.float32)
        print("radius", bad, pj.path_radius(offs) > 2, pj.splat_path(offs, np.zeros((5, 5)), out),
              float(out.sum()))
""")


def test_f1_hostile_motions_are_refused_under_bounds_checks(tmp_path):
    env = {**os.environ, "NUMBA_BOUNDSCHECK": "1", "NUMBA_CACHE_DIR": str(tmp_path / "numba-cache")}
    done = subprocess.run([sys.executable, "-c", _F1_SCRIPT], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "ACCEPTED" not in done.stdout, done.stdout
    assert sum(line.startswith("refused") for line in lines) == 7, done.stdout
    radius = [line for line in lines if line.startswith("radius")]
    assert radius and all(line.endswith("True False 0.0") for line in radius), done.stdout


def test_f5_a_camera_that_fits_no_small_kernel_is_refused_quickly_with_a_size_that_works(tmp_path):
    """Was 80 s of silence: the fit check now bisects sizes and probes one sample first."""
    done = subprocess.run(["blurgen", "make", "--n", "2", "--out", str(tmp_path / "o.h5"), "--motion", "camera3d",
                           "--camera-steps", "5000", "--exposure-s", "10"], capture_output=True, text=True, timeout=45)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "use size >=" in done.stderr, done.stderr
    size = int(done.stderr.split("use size >=")[1].split()[0])
    assert 65 < size <= 1025
