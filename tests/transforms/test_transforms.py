"""RandomCameraShake / NumpyCameraShake: shapes and dtypes, identities, the float64 scipy
reference, reproducibility across batch splits and code paths, gradients, pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.signal
import torch

import blurgen
import blurgen.transforms
from blurgen.blur.curves import decode_curve, encode_curve
from blurgen.motion.bank import KernelBank
from blurgen.transforms import NumpyCameraShake, RandomCameraShake, camera_shake
from blurgen.transforms import _fused_jit as jit
from blurgen.transforms import _torch_ops as ops

NOISE = {"noise": True, "noise_a": (0.01, 0.02), "noise_b": (1e-4, 2e-4)}  # loud enough to see


def small_config(size: int = 15) -> blurgen.KernelConfig:
    return blurgen.KernelConfig(size=size, length_px=6.0)


def delta_bank(side: int = 5) -> KernelBank:
    k = np.zeros((side, side), np.float32)
    k[side // 2, side // 2] = 1
    return KernelBank(k)


def reference(x: torch.Tensor, params: dict, gamma, shake: RandomCameraShake | None = None) -> np.ndarray:
    """Float64 NumPy/scipy model of the transform for the images of ``params``: decode, numpy
    reflect pad, scipy.signal.convolve (valid), clip, noise with the same normals, clip, encode;
    without a transfer curve nothing is clipped (the values are blurred as they are)."""
    clip = (lambda v: np.clip(v, 0, 1)) if gamma else (lambda v: v)
    xd = clip(x.detach().cpu().double().numpy())
    kernels = params["kernels"].double().numpy()
    radius = kernels.shape[-1] // 2
    lin = decode_curve(xd, gamma) if gamma else xd
    out = np.stack([[scipy.signal.convolve(np.pad(plane, radius, mode="reflect"), k, mode="valid")
                     for plane in image] for image, k in zip(lin, kernels)])
    out = clip(out)
    if shake is not None and shake.noise:
        keys = shake.draw(params["index"].numpy())["noise_key"]
        z = jit.normals(keys, out[0].size).reshape(out.shape).astype(np.float64)
        a = params["noise_a"].double().numpy()[:, None, None, None]
        b = params["noise_b"].double().numpy()[:, None, None, None]
        out = clip(out + np.sqrt(np.maximum(a * out + b, 0)) * z)
    return encode_curve(out, gamma) if gamma else out


# --------------------------------------------------------------------------------------------
# Shapes, dtypes, identities


@pytest.mark.parametrize("batch", [1, 16])
@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_output_has_the_input_shape_dtype_and_device(batch, channels, dtype):
    x = torch.rand(batch, channels, 19, 23).to(dtype)
    y = RandomCameraShake(p=1.0, seed=1)(x)  # 65x65 kernels on a 19x23 image: reflect repeats
    assert y.shape == x.shape and y.dtype == dtype and y.device == x.device
    assert torch.isfinite(y.float()).all() and y.min() >= 0 and y.max() <= 1
    assert not torch.equal(y, x)


def test_three_dimensional_input_is_one_image():
    x = torch.rand(3, 21, 17)
    shake = RandomCameraShake(p=1.0, seed=4)
    y = shake(x)
    assert y.shape == x.shape
    assert torch.equal(y, shake(x[None], indices=[0])[0])


@pytest.mark.parametrize("gamma", ["srgb", "2.2", None])
def test_a_delta_kernel_is_the_identity(gamma):
    x = torch.rand(4, 3, 17, 13)
    y = RandomCameraShake(bank=delta_bank(), p=1.0, gamma=gamma, seed=0)(x)
    if gamma is None:
        assert torch.equal(y, x)
    else:  # through the decode and encode tables
        assert (y - x).abs().max() < 2e-6


@pytest.mark.parametrize("method", ["auto", "fft"])
def test_a_constant_image_stays_constant(method):
    x = torch.full((3, 3, 31, 29), 0.37)
    y = RandomCameraShake(p=1.0, seed=2, method=method)(x)
    assert (y - 0.37).abs().max() < 2e-6


def test_unselected_images_come_back_unchanged_and_p_is_the_rate():
    x = torch.rand(200, 1, 9, 9)
    shake = RandomCameraShake(small_config(9), p=0.3, seed=5)
    y, params = shake(x, return_params=True)
    applied = params["applied"]
    assert torch.equal(y[~applied], x[~applied])
    assert not any(torch.equal(y[i], x[i]) for i in np.flatnonzero(applied.numpy()))
    assert 40 <= int(applied.sum()) <= 80  # 200 draws at p = 0.3: mean 60, sd 6.5
    assert torch.equal(RandomCameraShake(p=0.0, seed=5)(x), x)


# --------------------------------------------------------------------------------------------
# Against the float64 reference, and the code paths against each other


@pytest.mark.parametrize("gamma", ["srgb", "2.2", None])
@pytest.mark.parametrize("noise", [False, True])
def test_cpu_float32_matches_a_float64_scipy_reference(gamma, noise):
    x = torch.rand(5, 3, 37, 41)
    options = {"gamma": gamma, **(NOISE if noise else {})}
    for method in ("auto", "fft"):
        shake = RandomCameraShake(p=1.0, seed=3, method=method, **options)
        y, params = shake(x, return_params=True)
        assert np.abs(y.double().numpy() - reference(x, params, gamma, shake)).max() < 1e-5
    y64, params = RandomCameraShake(p=1.0, seed=3, **options)(x.double(), return_params=True)
    assert np.abs(y64.numpy() - reference(x, params, gamma, shake)).max() < 1e-12


def test_fused_cpu_loop_matches_the_torch_path_other_devices_run():
    x = torch.rand(6, 3, 40, 33)
    kernels = RandomCameraShake(seed=9).kernels_for(range(6))[0]
    from blurgen.transforms import _common_size

    k = _common_size(kernels)
    draws = RandomCameraShake(seed=9, **NOISE).draw(np.arange(6))
    noise = (draws["noise_a"], draws["noise_b"], draws["noise_key"])
    assert ops.fused_ok(x, k, "auto")
    fused = ops.blur(x, k, "srgb", "auto", noise)
    generic = ops.blur_torch(x, k, "srgb", "fft", noise)
    assert (fused - generic).abs().max() < 1e-5


def test_torch_hash_noise_equals_the_numba_noise():
    keys = np.array([[1, 2], [2**32 - 1, 12345], [0, 0]], np.uint64)
    numba_z = jit.normals(keys, 1001)
    torch_z = ops.hash_normals(keys, 1001, torch.device("cpu"))
    assert torch.equal(torch.from_numpy(numba_z), torch_z)
    assert abs(numba_z.std() - 1) < 0.05 and abs(numba_z.mean()) < 0.05
    assert not np.array_equal(numba_z[0], numba_z[1])


def test_sparse_taps_and_fft_convolutions_agree_forward_and_backward():
    k = RandomCameraShake(seed=2).kernels_for([0, 1, 2])[0]
    from blurgen.transforms import _common_size

    kernels = _common_size(k)
    size = kernels.shape[-1]
    src = torch.rand(3, 2, 11 + size - 1, 14 + size - 1, requires_grad=True)
    taps = ops.convolve_valid(src, kernels, "taps")
    fft = ops.convolve_valid(src, kernels, "fft")
    assert (taps - fft).abs().max() < 1e-6
    grad = torch.randn_like(taps)
    (g_taps,) = torch.autograd.grad(taps, src, grad)
    (g_fft,) = torch.autograd.grad(fft, src, grad)
    assert (g_taps - g_fft).abs().max() < 1e-5


def test_reflect_padding_of_any_width_is_numpys():
    x = torch.rand(1, 1, 5, 3)
    for pad in (0, 1, 2, 4, 7, 15):
        got = ops.reflect_pad(x, pad)[0, 0].numpy()
        np.testing.assert_array_equal(got, np.pad(x[0, 0].numpy(), pad, mode="reflect"))
    one = ops.reflect_pad(torch.rand(1, 1, 1, 4), 3)
    assert torch.equal(one[0, 0, :, 3:7], one[0, 0, 3:4, 3:7].expand(7, 4))


def test_transfer_tables_are_within_their_documented_error():
    v = np.concatenate([np.linspace(0, 1, 200_001), np.geomspace(1e-12, 1e-2, 50_000)])
    x = torch.from_numpy(v.astype(np.float32))[None, None, None]
    exact = x.double().numpy().ravel()
    for gamma in ("srgb", "2.2"):
        # decode -> delta blur -> encode: the tables' round trip
        out = ops.blur(x, np.ones((1, 1, 1), np.float32), gamma, "taps")[0, 0, 0].double().numpy()
        assert np.abs(out - exact).max() < 2e-6
        tables = ((jit.decode_table(gamma), decode_curve, jit.DECODE_STEPS, 2e-7),
                  (jit.encode_table(gamma), encode_curve, jit.ENCODE_STEPS, 2e-6))
        for table, curve, steps, bound in tables:
            t = np.sqrt(v) * steps
            i = np.minimum(t.astype(int), steps)
            interp = table[i] + (t - i) * (table[i + 1].astype(np.float64) - table[i])
            assert np.abs(interp - curve(v, gamma)).max() < bound


# --------------------------------------------------------------------------------------------
# Reproducibility


@pytest.mark.parametrize("options", [{}, NOISE, {"p": 0.5, **NOISE}])
def test_same_seed_equal_across_batch_splits(options):
    x = torch.rand(7, 3, 24, 20)
    whole = RandomCameraShake(seed=11, **{"p": 1.0, **options})
    split = RandomCameraShake(seed=11, **{"p": 1.0, **options})
    y = whole(x)
    parts = torch.cat([split(x[:2]), split(x[2:3]), split(x[3:])])
    assert torch.equal(y, parts)
    assert whole.counter == split.counter == 7
    assert torch.equal(RandomCameraShake(seed=11, **{"p": 1.0, **options})(x[[4, 1]], indices=[4, 1]), y[[4, 1]])


def test_counter_advances_and_indices_leave_it_alone():
    shake = RandomCameraShake(p=1.0, seed=0)
    x = torch.rand(3, 1, 9, 9)
    _, first = shake(x, return_params=True)
    _, second = shake(x, indices=[10, 11, 12], return_params=True)
    _, third = shake(x, return_params=True)
    assert first["index"].tolist() == [0, 1, 2] and second["index"].tolist() == [10, 11, 12]
    assert third["index"].tolist() == [3, 4, 5] and shake.counter == 6


def test_state_dict_carries_seed_and_counter():
    shake = RandomCameraShake(p=1.0)
    shake(torch.rand(3, 1, 8, 8))
    resumed = RandomCameraShake(p=1.0, seed=0)
    resumed.load_state_dict(shake.state_dict())
    x = torch.rand(2, 1, 8, 8)
    assert resumed.counter == 3 and torch.equal(resumed(x), shake(x))


def test_model_kernels_are_random_kernels_at_the_sample_index():
    config = small_config(21)
    shake = RandomCameraShake(config, p=1.0, seed=7)
    _, params = shake(torch.rand(4, 1, 9, 9), indices=[3, 4, 9, 5], return_params=True)
    expected = blurgen.random_kernels(10, seed=7, config=config)[[3, 4, 9, 5]]
    for got, want in zip(params["kernels"].numpy(), expected):
        np.testing.assert_array_equal(blurgen.crop_to_support(got), blurgen.crop_to_support(want))
    model = blurgen.motion.api.random_kernels_with_params(10, seed=7, config=config)[1]
    np.testing.assert_array_equal(params["kernel_params"]["anxiety"].numpy(), model["anxiety"][[3, 4, 9, 5]])


def test_bank_kernels_and_params_come_from_the_bank():
    rng = np.random.default_rng(0)
    bank = KernelBank(rng.random((6, 7, 7)) * (rng.random((6, 7, 7)) < 0.3) + np.eye(7), augment=True)
    shake = RandomCameraShake(bank=bank, p=1.0, seed=3)
    _, params = shake(torch.rand(5, 3, 12, 12), return_params=True)
    kernels, bank_params = bank.sample(3, range(5))
    for got, want in zip(params["kernels"].numpy(), kernels):
        np.testing.assert_array_equal(blurgen.crop_to_support(got), want)
    assert params["kernel_params"]["transform"].tolist() == bank_params["transform"].tolist()


def test_return_params_describe_every_image():
    shake = RandomCameraShake(small_config(), p=0.5, seed=1, **NOISE)
    y, params = shake(torch.rand(12, 3, 10, 10), return_params=True)
    applied = params["applied"].numpy()
    assert 0 < applied.sum() < 12
    size = params["kernels"].shape[-1]
    assert params["kernels"].shape == (12, size, size) and size % 2 == 1
    delta = torch.zeros(size, size)
    delta[size // 2, size // 2] = 1
    assert all(torch.equal(params["kernels"][i], delta) for i in np.flatnonzero(~applied))
    assert (params["kernel_size"][~params["applied"]] == 1).all()
    assert (params["noise_a"][params["applied"]] >= 0.01).all() and (params["noise_a"][~params["applied"]] == 0).all()
    assert set(params["kernel_params"]) >= {"anxiety", "exposure_fraction", "seed_index"}


def test_worker_processes_interleave_their_indices(monkeypatch):
    class Info:
        id, num_workers = 1, 3

    monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda: Info())
    shake = RandomCameraShake(p=1.0, seed=0)
    assert shake.next_indices(2).tolist() == [1, 4] and shake.next_indices(1).tolist() == [7]


# --------------------------------------------------------------------------------------------
# Gradients


def test_gradient_flows_to_the_input_on_the_fused_path():
    x = torch.rand(3, 2, 13, 11, requires_grad=True)
    y = RandomCameraShake(p=1.0, seed=1, **NOISE)(x, indices=[0, 1, 2])
    grad = torch.randn_like(y)
    (g_fused,) = torch.autograd.grad(y, x, grad)
    y_fft = RandomCameraShake(p=1.0, seed=1, method="fft", **NOISE)(x, indices=[0, 1, 2])
    (g_fft,) = torch.autograd.grad(y_fft, x, grad)
    assert torch.isfinite(g_fused).all() and g_fused.abs().sum() > 0
    assert (g_fused - g_fft).abs().max() < 1e-5


def test_gradcheck_in_float64():
    x = (torch.rand(2, 2, 9, 8, dtype=torch.float64) * 0.8 + 0.1).requires_grad_()
    shake = RandomCameraShake(small_config(9), p=1.0, seed=1, gamma=None)
    assert torch.autograd.gradcheck(lambda t: shake(t, indices=[0, 1]), (x,))


def test_half_precision_input_gets_a_gradient():
    x = torch.rand(2, 3, 16, 16).half().requires_grad_()
    RandomCameraShake(p=1.0, seed=0)(x).float().sum().backward()
    assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()


# --------------------------------------------------------------------------------------------
# NumPy callable, pipelines, errors


def test_numpy_callable_matches_the_module_on_uint8_float_and_gray_images():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (21, 18, 3), dtype=np.uint8)
    shake = NumpyCameraShake(p=1.0, seed=6)
    out = shake(img, index=4)
    tensor = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    expected = RandomCameraShake(p=1.0, seed=6)(tensor, indices=[4])
    assert out.dtype == np.uint8 and out.shape == img.shape
    assert np.abs(out.astype(int) - np.round(expected.permute(1, 2, 0).numpy() * 255)).max() <= 1
    gray = img[:, :, 0]
    assert shake(gray, index=4).shape == gray.shape
    as_float = shake(img.astype(np.float32) / 255, index=4)
    assert as_float.dtype == np.float32 and np.abs(as_float * 255 - out).max() < 0.51
    assert shake(img, cols=18, rows=21, shape=img.shape, index=4).tobytes() == out.tobytes()


def test_numpy_callable_pickles_and_keeps_its_stream():
    shake = NumpyCameraShake(p=1.0, seed=2, noise=True)
    img = np.full((16, 16, 3), 128, np.uint8)
    shake(img)
    clone = pickle.loads(pickle.dumps(shake))
    assert np.array_equal(clone(img), shake(img))


def _blurred_item(shake, i):
    img = np.zeros((24, 24, 3), np.uint8)
    img[8:16, 8:16] = 255
    return shake(img, index=i)


class _Items(torch.utils.data.Dataset):
    def __init__(self, shake):
        self.shake = shake

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return torch.from_numpy(_blurred_item(self.shake, i))


def test_dataloader_workers_give_the_same_images_as_the_main_process():
    shake = NumpyCameraShake(p=1.0, seed=3)
    loader = torch.utils.data.DataLoader(_Items(shake), batch_size=2, num_workers=2,
                                         multiprocessing_context="spawn")
    got = torch.cat(list(loader))
    assert torch.equal(got, torch.stack([torch.from_numpy(_blurred_item(shake, i)) for i in range(4)]))


def test_torchvision_v2_pipeline_runs_it_on_tensors_and_numpy_images():
    v2 = pytest.importorskip("torchvision.transforms.v2")
    img = np.random.default_rng(1).integers(0, 256, (20, 22, 3), dtype=np.uint8)
    on_tensors = v2.Compose([v2.ToImage(), v2.ToDtype(torch.float32, scale=True), RandomCameraShake(p=1.0, seed=0)])
    on_numpy = v2.Compose([v2.Lambda(NumpyCameraShake(p=1.0, seed=0)), v2.ToImage()])
    a, b = on_tensors(img), on_numpy(img)
    assert a.shape == b.shape == (3, 20, 22)
    assert (a * 255 - b.float()).abs().max() <= 0.51


@pytest.mark.parametrize("bad, message", [
    (lambda: RandomCameraShake(p=1.5), "p must be"),
    (lambda: RandomCameraShake(gamma="linear"), "gamma must be"),
    (lambda: RandomCameraShake(method="grouped"), "method must be"),
    (lambda: RandomCameraShake(seed=-1), "seed must be"),
    (lambda: RandomCameraShake(noise_a=(0.5, 0.1)), "noise_a must be"),
    (lambda: RandomCameraShake(config="kernel"), "config must be"),
    (lambda: RandomCameraShake(blurgen.KernelConfig(), bank=delta_bank()), "not both"),
    (lambda: RandomCameraShake(bank=np.ones((3, 3))), "bank must be"),
    (lambda: RandomCameraShake()(torch.rand(2, 3, 8, 8), indices=[1]), "one index per image"),
    (lambda: RandomCameraShake()(torch.rand(2, 3, 8, 8), indices=[1, -2]), "indices must be"),
    (lambda: RandomCameraShake()(torch.rand(8, 8)), "input must be"),
    (lambda: RandomCameraShake()(torch.zeros(1, 3, 8, 8, dtype=torch.int16)), "input must be float"),
    (lambda: NumpyCameraShake()(np.zeros((4, 4, 3), np.int16)), "image must be"),
    (lambda: camera_shake(torch.rand(2, 1, 8, 8), np.ones((2, 4, 4))), "kernels \\(B, k, k\\)"),
    (lambda: camera_shake(torch.rand(2, 1, 8, 8), np.ones((2, 3, 3)), gamma="sRGB"), "gamma must be"),
])
def test_bad_arguments_name_the_problem(bad, message):
    with pytest.raises((ValueError, TypeError), match=message):
        bad()


def test_camera_config_is_accepted_when_the_camera_model_exists():
    camera = pytest.importorskip("blurgen.camera.config")
    shake = RandomCameraShake(camera.CameraConfig(), p=1.0, seed=0)
    x = torch.rand(2, 3, 20, 20)
    _, params = shake(x, return_params=True)
    expected = blurgen.random_kernels(2, seed=0, config=camera.CameraConfig())
    for got, want in zip(params["kernels"].numpy(), expected):
        np.testing.assert_array_equal(blurgen.crop_to_support(got), blurgen.crop_to_support(want))


def test_import_blurgen_does_not_import_torch_and_transforms_does():
    import subprocess
    import sys

    code = ("import sys, blurgen; a = 'torch' in sys.modules; import blurgen.transforms; "
            "print(a, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True"]


def test_numba_loops_pass_without_jit():
    """The fused loop, the taps and the noise again with NUMBA_DISABLE_JIT=1: their Python
    source is what runs (and what coverage sees); uint64 wrap-arounds must not warn."""
    import os
    import subprocess
    import sys

    selection = "hash_noise or delta_kernel or fused_cpu_loop or sparse_taps"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error", "-k", selection, __file__],
        env={**os.environ, "NUMBA_DISABLE_JIT": "1"}, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "\n6 passed" in result.stdout
