"""Laws of the kernel model: normalisation, centring, determinism, exactness, the reference oracle.

Also run under NUMBA_DISABLE_JIT=1 by tests/project/test_nojit.py.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blurgen import KernelConfig, random_kernels, random_trajectories, rasterize
from blurgen.core.kernel_shape import crop_to_support, support_radius
from blurgen.motion.api import random_kernels_with_params
from blurgen.reference.walk import reference_kernel, reference_rasterize

NOJIT = os.environ.get("NUMBA_DISABLE_JIT") == "1"
EXAMPLES = 8 if NOJIT else 60
PROPERTY = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def kernel_configs(draw, max_steps: int = 120 if NOJIT else 2000):
    """Configurations whose paths always fit: a path of length L strays at most L from its mean.
    The ranges are KernelConfig's whole ranges but for length (<= 60 px, the DeblurGAN length)."""
    length = draw(st.floats(0.5, 60.0))
    margin = draw(st.integers(0, 6))
    return KernelConfig(
        steps=draw(st.integers(2, max_steps)),
        length_px=length,
        anxiety=tuple(draw(st.lists(st.floats(1e-6, 0.1), min_size=1, max_size=4))),
        centripetal_max=draw(st.floats(0.0, 10.0)),
        gaussian_shake_max=draw(st.floats(0.0, 100.0)),
        big_shake_prob_max=draw(st.floats(0.0, 1.0)),
        exposures=tuple(draw(st.lists(st.floats(0.01, 1.0), min_size=1, max_size=3))),
        size=2 * (math.ceil(length) + margin) + 3,
    )


seeds = st.integers(0, 2**63 - 1)
starts = st.integers(0, 10**12)


def centroid(kernel: np.ndarray) -> tuple[float, float]:
    k = kernel.astype(np.float64)
    rows, cols = np.indices(k.shape)
    return float((k * cols).sum() / k.sum()), float((k * rows).sum() / k.sum())


def moments(kernel: np.ndarray) -> np.ndarray:
    """Weighted 2x2 covariance (x, y) of a kernel's pixel grid."""
    k = kernel.astype(np.float64) / kernel.astype(np.float64).sum()
    rows, cols = np.indices(k.shape)
    mx, my = (k * cols).sum(), (k * rows).sum()
    dx, dy = cols - mx, rows - my
    return np.array([[(k * dx * dx).sum(), (k * dx * dy).sum()], [(k * dx * dy).sum(), (k * dy * dy).sum()]])


def predicted_moments(points: np.ndarray, size: int) -> np.ndarray:
    """Path covariance plus the bilinear splat's own variance u(1-u), v(1-v) (no covariance)."""
    p = points.astype(np.float32).astype(np.float64)
    shifted = p - p.mean(axis=0) + (size - 1) / 2.0
    frac = shifted - np.floor(shifted)
    cov = np.cov(p.T, bias=True).reshape(2, 2)
    return cov + np.diag((frac * (1 - frac)).mean(axis=0))


@PROPERTY
@given(config=kernel_configs(), seed=seeds, start=starts, n=st.integers(1, 5))
def test_kernels_are_normalised_non_negative_odd_and_centred(config, seed, start, n):
    psf = random_kernels(n, seed=seed, start=start, config=config)
    assert psf.dtype == np.float32 and psf.shape == (n, config.size, config.size)
    assert config.size % 2 == 1
    assert psf.min() >= 0
    assert np.abs(psf.sum(axis=(1, 2), dtype=np.float64) - 1).max() < 1e-5
    c = (config.size - 1) / 2
    for k in psf:
        cx, cy = centroid(k)
        assert abs(cx - c) <= 0.05 and abs(cy - c) <= 0.05


@PROPERTY
@given(config=kernel_configs(), seed=seeds, start=st.integers(0, 10**6), n=st.integers(2, 6),
       m=st.integers(0, 5))
def test_sample_depends_only_on_seed_and_index(config, seed, start, n, m):
    m = m % n
    batch = random_kernels(n, seed=seed, start=start, config=config)
    alone = random_kernels(1, seed=seed, start=start + m, config=config)[0]
    assert batch[m].tobytes() == alone.tobytes()
    xy_batch, p_batch = random_trajectories(n, config, seed=seed, start=start)
    xy_alone, p_alone = random_trajectories(1, config, seed=seed, start=start + m)
    assert xy_batch[m].tobytes() == xy_alone[0].tobytes()
    assert all(p_batch[k][m] == p_alone[k][0] for k in p_batch)


def test_batches_across_task_boundaries_hold_the_samples_made_one_by_one():
    """The batch functions split samples into prange tasks of CHUNK (32); a batch of 70 starting
    at an odd index holds exactly the samples drawn alone, across every task boundary."""
    config = KernelConfig(steps=60 if NOJIT else 400, length_px=15.0, size=35, exposures=(0.3, 1.0))
    n = 70
    batch = random_kernels(n, seed=8, start=1001, config=config)
    xy_batch, p_batch = random_trajectories(n, config, seed=8, start=1001)
    for m in (0, 1, 30, 31, 32, 33, 63, 64, 65, 69):
        assert batch[m].tobytes() == random_kernels(1, seed=8, start=1001 + m, config=config)[0].tobytes()
        xy_alone, p_alone = random_trajectories(1, config, seed=8, start=1001 + m)
        assert xy_batch[m].tobytes() == xy_alone[0].tobytes()
        assert all(p_batch[k][m] == p_alone[k][0] for k in p_batch)


@pytest.mark.skipif(NOJIT, reason="threads exist only in compiled code")
@pytest.mark.parametrize("config", [KernelConfig(size=31, length_px=20.0), KernelConfig(exposures=(0.1, 0.5, 1.0))])
def test_kernels_and_paths_identical_whatever_the_thread_count(config):
    before = numba.get_num_threads()
    results = []
    try:
        for threads in sorted({1, 2, numba.config.NUMBA_NUM_THREADS}):
            numba.set_num_threads(threads)
            xy, params = random_trajectories(77, config, seed=5, start=3)
            results.append((random_kernels(77, seed=5, start=3, config=config).tobytes(), xy.tobytes(),
                            {k: v.tobytes() for k, v in params.items()}))
    finally:
        numba.set_num_threads(before)
    assert all(r == results[0] for r in results)


@PROPERTY
@given(config=kernel_configs(), seeds=st.lists(seeds, min_size=2, max_size=2, unique=True), start=starts)
def test_different_seeds_give_different_kernels(config, seeds, start):
    # Full exposure of a path of >= 20 steps: a shorter one can expose a single sample (a delta).
    config = config.replace(steps=max(config.steps, 20), exposures=(1.0,))
    a = random_kernels(3, seed=seeds[0], start=start, config=config)
    b = random_kernels(3, seed=seeds[1], start=start, config=config)
    assert all(not np.array_equal(a[i], b[i]) for i in range(3))


@PROPERTY
@given(config=kernel_configs(), seed=seeds, f1=st.floats(0.01, 1.0), f2=st.floats(0.01, 1.0))
def test_shorter_exposure_never_has_larger_support(config, seed, f1, f2):
    short, long_ = sorted((f1, f2))
    xy, _ = random_trajectories(1, config.replace(exposures=(1.0,)), seed=seed)
    size = 2 * config.size + 1  # room for any prefix centred on its own mean
    k_short, k_long = rasterize(xy, size, short)[0], rasterize(xy, size, long_)[0]

    def extent(k, axis):
        nz = np.flatnonzero(k.any(axis=axis))
        return nz[-1] - nz[0]

    for axis in (0, 1):
        assert extent(k_short, axis) <= extent(k_long, axis) + 1


def test_rasterizing_returned_trajectories_reproduces_random_kernels_bit_for_bit():
    config = KernelConfig(exposures=(0.1, 0.5, 1.0), steps=500, length_px=30.0, size=41)
    xy, params = random_trajectories(24, config, seed=11, start=100)
    psf = rasterize(xy, config.size, params["exposure_fraction"])
    assert psf.tobytes() == random_kernels(24, seed=11, start=100, config=config).tobytes()


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 12345, 2**40 + 7])
@pytest.mark.parametrize("config", [
    KernelConfig(steps=200 if NOJIT else 2000),
    KernelConfig(steps=150, length_px=25.0, size=31, exposures=(0.1, 0.5, 1.0), anxiety=(0.1, 0.05)),
    KernelConfig(steps=300, length_px=12.0, size=15, big_shake_prob_max=1.0, anxiety=(0.1,)),
], ids=["defaults", "exposure-mix", "tight-size"])
def test_numba_matches_plain_python_reference(seed, config):
    index = seed % 97
    psf, params = random_kernels_with_params(1, seed=seed, start=index, config=config)
    xy, _ = random_trajectories(1, config, seed=seed, start=index)
    ref_psf, ref_path, ref_params = reference_kernel(seed, index, config)
    assert np.abs(psf[0] - ref_psf).max() < 1e-6
    assert np.abs(xy[0] - ref_path).max() < 1e-4
    for name in ("anxiety", "centripetal", "gaussian_shake", "big_shake_prob", "exposure_fraction"):
        assert params[name][0] == np.float32(ref_params[name])
    for name in ("big_shakes", "redraws", "exposed_steps"):
        assert params[name][0] == ref_params[name]


def test_redrawn_samples_match_the_reference_too():
    """A path that does not fit is redrawn whole (parameters and walk) from the sample's stream:
    the samples that needed redraws agree with the reference like the others."""
    config = KernelConfig(steps=300, length_px=30.0, size=21, anxiety=(0.01, 0.003), exposures=(0.5, 1.0))
    psf, params = random_kernels_with_params(40, seed=9, config=config)
    redrawn = np.flatnonzero(params["redraws"] > 0)[:4 if NOJIT else 10]
    assert redrawn.size >= 4 and params["redraws"][redrawn].max() >= 2
    for i in redrawn:
        ref_psf, _, ref_params = reference_kernel(9, int(i), config)
        assert np.abs(psf[i] - ref_psf).max() < 1e-6
        assert params["redraws"][i] == ref_params["redraws"]
        for name in ("anxiety", "centripetal", "gaussian_shake", "big_shake_prob", "exposure_fraction"):
            assert params[name][i] == np.float32(ref_params[name])


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**63 - 1), anxiety=st.sampled_from([1e-6, 1e-3, 0.1]),
       length=st.sampled_from([1e-6, 0.01, 1.0, 30.0]), centripetal=st.sampled_from([0.0, 10.0]),
       gaussian=st.sampled_from([0.0, 100.0]), big=st.sampled_from([0.0, 1.0]),
       steps=st.sampled_from([2, 3, 50, 2000]), exposure=st.sampled_from([1e-9, 0.5, 1.0]))
def test_every_accepted_extreme_gives_proper_kernels(seed, anxiety, length, centripetal, gaussian, big,
                                                     steps, exposure):
    """The corners of KernelConfig's ranges: whatever it accepts either gives kernels that sum to
    1 with the centroid on the centre, or (a path too long for the size) a ValueError."""
    config = KernelConfig(steps=steps, length_px=length, anxiety=(anxiety,), centripetal_max=centripetal,
                          gaussian_shake_max=gaussian, big_shake_prob_max=big, exposures=(exposure,),
                          size=2 * math.ceil(length) + 5)
    psf = random_kernels(3, seed=seed, config=config)
    assert np.isfinite(psf).all() and psf.min() >= 0
    assert np.abs(psf.sum(axis=(1, 2)) - 1).max() < 1e-5
    centre = (config.size - 1) / 2
    coords = np.arange(config.size)
    for k in psf.astype(np.float64):
        assert abs((k.sum(axis=0) * coords).sum() - centre) < 0.05
        assert abs((k.sum(axis=1) * coords).sum() - centre) < 0.05


def test_reference_rasterize_matches_public_rasterize_on_arbitrary_paths():
    rng = np.random.default_rng(0)
    path = np.cumsum(rng.normal(size=(300, 2)) * 0.3, axis=0)
    for used in (1, 2, 50, 300):
        ref = reference_rasterize(path, used, 41)
        exposure = (used - 1) / 299 if used > 1 else 1e-6
        assert np.abs(rasterize(path, 41, exposure) - ref).max() < 1e-6


@PROPERTY
@given(config=kernel_configs(), seed=seeds)
def test_kernel_covariance_is_path_covariance_plus_bilinear_variance(config, seed):
    config = config.replace(exposures=(1.0,))
    xy, _ = random_trajectories(1, config, seed=seed)
    k = rasterize(xy[0], config.size)
    assert np.abs(moments(k) - predicted_moments(xy[0], config.size)).max() < 1e-4


@PROPERTY
@given(angle=st.floats(0, 2 * math.pi), length=st.floats(0.0, 40.0), x0=st.floats(-5, 5), y0=st.floats(-5, 5),
       samples=st.integers(2, 2000))
def test_exactness_law_holds_for_straight_lines_at_any_angle_and_offset(angle, length, x0, y0, samples):
    t = np.linspace(0.0, length, samples)
    line = np.stack([x0 + t * math.cos(angle), y0 + t * math.sin(angle)], axis=1)
    size = 2 * math.ceil(length / 2) + 5
    k = rasterize(line, size)
    assert np.abs(moments(k) - predicted_moments(line, size)).max() < 1e-4


@PROPERTY
@given(angle=st.floats(0, 2 * math.pi), length=st.floats(12.0, 60.0), x0=st.floats(0, 1), y0=st.floats(0, 1))
def test_straight_constant_velocity_path_has_uniform_variance_along_motion(angle, length, x0, y0):
    t = np.linspace(0.0, length, 2000)
    direction = np.array([math.cos(angle), math.sin(angle)])
    line = np.array([x0, y0]) + t[:, None] * direction
    k = rasterize(line, 2 * math.ceil(length / 2) + 5)
    along = direction @ moments(k) @ direction
    assert abs(along / (length**2 / 12) - 1) < 0.02


def test_paths_that_do_not_fit_are_redrawn_and_counted_never_clipped():
    config = KernelConfig(steps=100, length_px=20.0, size=17, anxiety=(0.01,), centripetal_max=0.0,
                          gaussian_shake_max=30.0)
    psf, params = random_kernels_with_params(12, seed=3, config=config)
    assert params["redraws"].sum() > 0
    assert np.abs(psf.sum(axis=(1, 2)) - 1).max() < 1e-5
    again = random_kernels_with_params(12, seed=3, config=config)[1]["redraws"]
    assert np.array_equal(params["redraws"], again)


def test_infeasible_size_raises_a_clear_error():
    with pytest.raises(ValueError, match="size=5 is too small for length_px=60"):
        random_kernels(1, size=5, anxiety=(0.0001,), centripetal_max=0.0, steps=50)


def test_rasterize_refuses_paths_that_do_not_fit():
    line = np.stack([np.linspace(0, 30, 50), np.zeros(50)], axis=1)
    with pytest.raises(ValueError, match="does not fit a 15x15 kernel"):
        rasterize(line, 15)


def test_params_record_every_drawn_value_within_its_range():
    config = KernelConfig(steps=100, exposures=(0.1, 0.5, 1.0))
    _, p = random_trajectories(200, config, seed=9)
    assert set(np.unique(p["anxiety"])) <= {np.float32(a) for a in config.anxiety}
    assert set(np.unique(p["exposure_fraction"])) == {np.float32(e) for e in config.exposures}
    assert 0 <= p["centripetal"].min() and p["centripetal"].max() <= config.centripetal_max
    assert 0 <= p["gaussian_shake"].min() and p["gaussian_shake"].max() <= config.gaussian_shake_max
    assert 0 <= p["big_shake_prob"].min() and p["big_shake_prob"].max() <= config.big_shake_prob_max
    assert np.array_equal(p["seed_index"], np.arange(200))
    full = p["exposure_fraction"] == 1.0
    assert np.allclose(p["path_length_px"][full], config.length_px)


def test_every_full_path_is_exactly_length_px_long():
    xy, _ = random_trajectories(5, KernelConfig(steps=500, length_px=33.0), seed=2)
    steps = np.linalg.norm(np.diff(xy.astype(np.float64), axis=1), axis=2)
    assert np.allclose(steps.sum(axis=1), 33.0, rtol=1e-5)
    assert np.allclose(steps, 33.0 / 499, rtol=1e-3)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"size": 4}, r"size must be an odd integer in \[3,"),
    ({"size": 1}, r"size must be an odd integer in \[3,"),
    ({"length_px": 0.0}, r"length_px must be a number in \[1e-06, 10000.0\]"),
    ({"length_px": -3.0}, r"length_px must be a number in \[1e-06,"),
    ({"length_px": 1e-200}, r"length_px must be a number in \[1e-06,"),
    ({"anxiety": (0.0,)}, r"anxiety value must be a number in \[1e-06, 0.1\]"),
    ({"anxiety": (0.2,)}, r"anxiety value must be a number in \[1e-06, 0.1\]"),
    ({"anxiety": (1e-300,)}, r"anxiety value must be a number in \[1e-06, 0.1\]"),
    ({"exposures": (0.0,)}, r"exposures value must be a number in \(0.0, 1.0\]"),
    ({"exposures": (1.5,)}, r"exposures value must be a number in \(0.0, 1.0\]"),
    ({"steps": 1}, r"steps must be an integer in \[2,"),
    ({"centripetal_max": -1.0}, r"centripetal_max must be a number in \[0.0"),
    ({"nonsense": 1}, r"unknown KernelConfig field"),
])
def test_bad_config_values_raise_value_error_naming_parameter_and_range(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_kernels(1, **kwargs)


@pytest.mark.parametrize("call, pattern", [
    (lambda: random_kernels(0), r"n must be an integer in \[1,"),
    (lambda: random_kernels(2, seed=-1), r"seed must be an integer in \[0,"),
    (lambda: random_kernels(2, start=-5), r"start must be an integer in \[0,"),
    (lambda: random_kernels(2, start=2**63 - 1), r"start \+ n - 1 \(the last sample index\) must be <= "),
    (lambda: random_trajectories(0), r"n must be an integer in \[1,"),
    (lambda: rasterize(np.zeros((3, 2)), size=6), r"size must be an odd integer"),
    (lambda: rasterize(np.zeros((3, 2)), exposure=0.0), r"exposure must be in \(0, 1\]"),
    (lambda: rasterize(np.zeros((3, 3))), r"xy must have shape"),
    (lambda: rasterize(np.zeros((3, 2), complex)), r"xy must hold real numbers"),
    (lambda: rasterize(np.zeros((2, 3, 2)), exposure=[0.5, 0.5, 1.0]), r"exposure must be one number or one per path \(2\)"),
    (lambda: rasterize(np.zeros((2, 3, 2)), exposure=np.ones((2, 2))), r"exposure must be one number or one per path"),
    (lambda: rasterize(np.zeros((3, 2)), exposure="half"), r"exposure must be one number or one per path"),
])
def test_bad_call_arguments_raise_value_error(call, pattern):
    with pytest.raises(ValueError, match=pattern):
        call()


def test_the_largest_index_is_a_sample_like_any_other():
    last = 2**63 - 1
    xy, params = random_trajectories(2, seed=last, start=last - 1)
    assert params["seed_index"].tolist() == [last - 1, last]
    assert random_kernels(1, seed=last, start=last).tobytes() == rasterize(xy[1:], exposure=params["exposure_fraction"][1:]).tobytes()


def test_kernel_config_is_frozen_with_the_contract_field_names_and_round_trips():
    import dataclasses

    names = [f.name for f in dataclasses.fields(KernelConfig)]
    assert names == ["steps", "length_px", "anxiety", "centripetal_max", "gaussian_shake_max",
                     "big_shake_prob_max", "exposures", "size", "blur_length_px"]  # wave 3 adds the last
    config = KernelConfig(steps=np.int64(300), size=np.int32(41), length_px=np.float32(25.0),
                          anxiety=np.array([0.01, 0.005]), exposures=0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.size = 31
    assert type(config.steps) is int and type(config.size) is int and config.exposures == (0.5,)
    assert KernelConfig.from_json(config.to_json()) == config
    assert random_kernels(2, seed=1, config=config).tobytes() == random_kernels(
        2, seed=1, steps=300, size=41, length_px=25.0, anxiety=(0.01, 0.005), exposures=(0.5,)).tobytes()


@pytest.mark.skipif(NOJIT, reason="thousands of redrawn walks: minutes in Python; the jitted run covers it")
def test_fit_check_refuses_kernels_too_small_for_their_paths_and_names_a_size_that_fits():
    import re

    from blurgen.motion.api import check_kernel_fits
    from blurgen.motion.fit import MAX_MEAN_REDRAWS, mean_redraws

    check_kernel_fits(KernelConfig())  # the DeblurGAN defaults fit
    assert mean_redraws(KernelConfig(), random_trajectories) < 1
    with pytest.raises(ValueError, match=r"size=9 is too small for length_px=60") as info:
        check_kernel_fits(KernelConfig(size=9))
    suggested = int(re.search(r"use size >= (\d+)", str(info.value)).group(1))
    assert suggested > 9 and mean_redraws(KernelConfig(size=suggested), random_trajectories) <= MAX_MEAN_REDRAWS


def test_crop_to_support_is_symmetric_about_the_centre():
    psf = random_kernels(6, size=65, seed=4, length_px=20.0)
    for k in psf:
        cropped = crop_to_support(k)
        r = support_radius(k)
        assert cropped.shape == (2 * r + 1, 2 * r + 1)
        assert cropped.sum() == pytest.approx(k.sum(), abs=1e-6)
        assert centroid(cropped)[0] == pytest.approx(centroid(k)[0] - (32 - r), abs=1e-4)


@pytest.mark.parametrize("field", ["exposures", "anxiety"])
def test_a_string_for_a_sequence_field_is_refused_as_a_whole(field):
    with pytest.raises(ValueError, match=f"{field} must be a non-empty sequence of numbers.*got '0.5'"):
        random_kernels(2, **{field: "0.5"})
