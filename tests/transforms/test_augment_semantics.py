"""What users of albumentations/kornia/torchvision expect of the augmentation: normalised tensors
pass untouched by clipping, out-of-range input with a transfer curve is refused, uint8 works, a
v2 pipeline passes boxes, masks and labels through, epochs differ and are reproducible."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
tv = pytest.importorskip("torchvision")

from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from blurgen import KernelConfig  # noqa: E402
from blurgen.transforms import NumpyCameraShake, RandomCameraShake, camera_shake  # noqa: E402
from blurgen.transforms.v2 import RandomCameraShake as V2Shake  # noqa: E402

SMALL = KernelConfig(size=15, length_px=10.0)


def _normalised(seed=0, shape=(2, 3, 24, 28)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_a_normalised_batch_round_trips_with_no_gamma_and_p0_or_delta_kernels():
    x = _normalised()
    torch.testing.assert_close(RandomCameraShake(SMALL, p=0.0, gamma=None, seed=1)(x), x, rtol=0, atol=0)
    delta = np.zeros((2, 5, 5), np.float32)
    delta[:, 2, 2] = 1
    torch.testing.assert_close(camera_shake(x, delta, gamma=None), x, rtol=0, atol=1e-6)


def test_no_gamma_never_clips_and_keeps_the_mean():
    ramp = torch.linspace(-3.0, 4.0, 40)
    x = (ramp[None, :] + 0.5 * ramp[:, None]).expand(4, 3, 40, 40).contiguous()  # smooth, far outside [0, 1]
    for method in ("auto", "fft"):
        y = RandomCameraShake(SMALL, p=1.0, gamma=None, seed=2, method=method, noise=True)(x)
        assert float(y.min()) < -1.0 and float(y.max()) > 2.0  # nothing clipped to [0, 1]
        assert abs(float(y.mean()) - float(x.mean())) < 0.05


def test_a_transfer_curve_refuses_values_outside_0_1_in_one_line():
    with pytest.raises(ValueError, match=r"must be in \[0, 1\].*gamma=None") as info:
        RandomCameraShake(SMALL, p=1.0, seed=0)(_normalised())
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="NaN"):
        RandomCameraShake(SMALL, p=1.0, gamma=None, seed=0)(torch.full((1, 3, 8, 8), float("nan")))


def test_uint8_tensors_come_back_uint8_equal_to_the_float_path_rounded():
    x = torch.randint(0, 256, (2, 3, 30, 30), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    y = RandomCameraShake(SMALL, p=1.0, seed=4)(x)
    assert y.dtype == torch.uint8 and y.shape == x.shape
    expected = RandomCameraShake(SMALL, p=1.0, seed=4)(x.float() / 255)
    assert int((y.int() - (expected * 255).round().int()).abs().max()) <= 1
    assert not torch.equal(y, x)


def test_a_v2_pipeline_blurs_the_image_and_passes_boxes_masks_and_labels_through():
    image = tv_tensors.Image(torch.rand(3, 32, 40))
    boxes = tv_tensors.BoundingBoxes([[2, 3, 20, 30], [0, 0, 5, 5]], format="XYXY", canvas_size=(32, 40))
    mask = tv_tensors.Mask(torch.randint(0, 2, (32, 40)))
    pipe = v2.Compose([V2Shake(SMALL, p=1.0, seed=0)])
    out = pipe({"image": image, "boxes": boxes, "mask": mask, "label": 3})
    assert isinstance(out["image"], tv_tensors.Image) and not torch.equal(out["image"], image)
    assert out["label"] == 3 and torch.equal(out["boxes"], boxes) and torch.equal(out["mask"], mask)
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes)
    blurred, label = pipe(torch.rand(3, 16, 16), 3)  # a label passed along is not taken as indices
    assert label == 3 and blurred.shape == (3, 16, 16)
    with pytest.raises(ValueError, match="CameraConfig"):  # a clip needs one camera trajectory, not kernels
        pipe(tv_tensors.Video(torch.rand(2, 3, 16, 16)))


class _Images(torch.utils.data.Dataset):
    def __init__(self, shake):
        self.shake = shake

    def __len__(self):
        return 4

    def __getitem__(self, i):
        return self.shake(np.full((20, 20, 3), 40 * i + 20, np.uint8) + np.eye(20, dtype=np.uint8)[..., None] * 90)


def _epochs(epochs=2):
    shake = NumpyCameraShake(SMALL, p=1.0, seed=5)
    loader = torch.utils.data.DataLoader(_Images(shake), batch_size=2, num_workers=2, persistent_workers=False)
    out = []
    for epoch in range(epochs):
        shake.transform.set_epoch(epoch)  # in the main process: each epoch's workers copy it
        out.append(torch.cat(list(loader)).numpy())
    return out


def test_two_epochs_with_non_persistent_workers_differ_and_are_reproducible():
    first, second = _epochs()
    assert not np.array_equal(first, second)
    again = _epochs()
    np.testing.assert_array_equal(again[0], first)
    np.testing.assert_array_equal(again[1], second)


def test_the_epoch_travels_in_the_state_dict():
    shake = RandomCameraShake(SMALL, seed=1)
    shake.set_epoch(7)
    other = RandomCameraShake(SMALL, seed=2)
    other.load_state_dict(shake.state_dict())
    assert (other.seed, other.epoch, other.stream_seed) == (1, 7, shake.stream_seed) and shake.stream_seed != 1
