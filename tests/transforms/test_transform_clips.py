"""The augmentation on clips: one coherent hand-held trajectory per clip, (B, T, C, H, W) and
tv_tensors.Video, keyed by (seed, clip index) like images."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

import torch.nn.functional as F  # noqa: E402
from torchvision import tv_tensors  # noqa: E402
from torchvision.transforms import v2  # noqa: E402

from blurgen import CameraConfig, KernelConfig  # noqa: E402
from blurgen.camera.clip import random_camera_clip  # noqa: E402
from blurgen.camera.kernels import local_kernels  # noqa: E402
from blurgen.camera.render import window_origin  # noqa: E402
from blurgen.transforms import RandomCameraShake, camera_shake  # noqa: E402
from blurgen.transforms.v2 import RandomCameraShake as V2Shake  # noqa: E402

CAMERA = CameraConfig()
H, W = 24, 32


def _clips(b=2, t=3, seed=0, dtype=torch.float32):
    return torch.rand(b, t, 3, H, W, generator=torch.Generator().manual_seed(seed)).to(dtype)


def _expected_kernels(seed, index, frames, fps, angle, draw):
    clip, _ = random_camera_clip(1, frames, fps, angle, CAMERA, seed=seed, start=index, draws=np.array([draw]))
    motion = clip.frame_motion(0)
    ox, oy = window_origin(motion[0:1], W, H)
    return local_kernels(motion, [[ox + (W - 1) / 2, oy + (H - 1) / 2]], CAMERA.size)[:, 0], clip


def test_each_frame_gets_the_kernel_of_random_camera_clip_for_the_same_seed_and_index():
    shake = RandomCameraShake(CAMERA, p=1.0, seed=5, fps=24, shutter_angle=270)
    x = _clips()
    y, params = shake(x, return_params=True)
    assert y.shape == x.shape and params["index"].tolist() == [0, 1] and shake.counter == 2
    for b in range(2):
        want, clip = _expected_kernels(5, b, 3, 24, 270, int(params["redraws"][b]))
        np.testing.assert_array_equal(params["kernels"][b].numpy(), want)
        np.testing.assert_array_equal(params["frame_rotation"][b].numpy(), clip.frame_rotation[0])
        # every frame blurred by its own kernel, as the image path blurs an image
        for j in range(3):
            one = camera_shake(x[b, j:j + 1], want[j:j + 1])
            torch.testing.assert_close(y[b, j:j + 1], one, rtol=0, atol=2e-5)
    shake.set_epoch(3)
    y3, p3 = shake(x, indices=[0, 1], return_params=True)
    want, _ = _expected_kernels(shake.stream_seed, 1, 3, 24, 270, int(p3["redraws"][1]))
    np.testing.assert_array_equal(p3["kernels"][1].numpy(), want)
    assert not torch.equal(y3, y)


def test_frames_of_a_clip_are_consecutive_exposures_of_one_motion():
    shake = RandomCameraShake(CAMERA, p=1.0, seed=2, fps=30, shutter_angle=360)
    short = shake(_clips(1, 3), indices=[7], return_params=True)[1]
    long = shake(_clips(1, 6), indices=[7], return_params=True)[1]
    # a longer clip extends the shorter one: the same trajectory, frame for frame
    assert int(short["redraws"][0]) == int(long["redraws"][0]) == 0  # this index needs no redraw
    np.testing.assert_array_equal(short["kernels"][0].numpy(), long["kernels"][0, :3].numpy())
    k = long["kernels"][0].numpy()
    assert all(not np.array_equal(k[j], k[j + 1]) for j in range(5))  # each frame its own window
    drift = np.linalg.norm(long["frame_rotation"][0].numpy(), axis=1)
    assert drift[0] == 0.0 and (drift[1:] > 0).all()
    other = shake(_clips(1, 6), indices=[8], return_params=True)[1]
    assert not np.array_equal(other["kernels"][0].numpy(), k)


def test_a_clip_depends_on_its_index_not_on_its_place_in_the_batch():
    x = _clips(3, 2, seed=1)
    shake = RandomCameraShake(CAMERA, p=0.6, seed=9, noise=True)
    together, params = shake(x, indices=[4, 5, 6], return_params=True)
    alone = shake(x[1:2], indices=[5])
    torch.testing.assert_close(alone[0], together[1], rtol=0, atol=1e-6)
    for b in range(3):
        if not params["applied"][b]:
            assert torch.equal(together[b], x[b]) and params["kernels"][b, :, 32, 32].eq(1).all()


def test_move_mode_warps_frame_j_to_its_mean_pose_then_blurs_it():
    x = _clips(2, 3, seed=4)
    blur = RandomCameraShake(CAMERA, p=1.0, seed=3, gamma=None)
    move = RandomCameraShake(CAMERA, p=1.0, seed=3, gamma=None, clip_mode="move")
    y, params = move(x, return_params=True)
    grid = params["grid"]
    assert grid.shape == (2, 3, H, W, 2)
    identity = F.affine_grid(torch.eye(2, 3)[None], (1, 1, H, W), align_corners=True)[0]
    torch.testing.assert_close(grid[:, 0], identity.expand(2, H, W, 2), rtol=0, atol=1e-5)
    assert float((grid[:, 1:] - identity).abs().max()) > 1e-4  # later frames see the scene moved
    warped = F.grid_sample(x.flatten(0, 1), grid.flatten(0, 1), mode="bicubic", padding_mode="reflection",
                           align_corners=True).reshape(x.shape)
    torch.testing.assert_close(y, blur(warped, indices=[0, 1]), rtol=0, atol=1e-5)
    assert "grid" not in blur(x, indices=[0, 1], return_params=True)[1]


def test_video_in_a_v2_compose_is_blurred_and_boxes_and_labels_pass_through():
    pipe = v2.Compose([v2.ToDtype(torch.float32, scale=True), V2Shake(CAMERA, p=1.0, seed=0)])
    video = tv_tensors.Video(torch.randint(0, 256, (3, 3, H, W), dtype=torch.uint8))
    boxes = tv_tensors.BoundingBoxes([[2, 3, 20, 21]], format="XYXY", canvas_size=(H, W))
    out = pipe({"video": video, "boxes": boxes, "label": 4})
    assert type(out["video"]) is tv_tensors.Video and out["video"].shape == video.shape
    assert out["label"] == 4 and torch.equal(out["boxes"], boxes)
    frames = video.float() / 255
    assert not torch.allclose(out["video"], frames, atol=1e-3)
    direct = RandomCameraShake(CAMERA, p=1.0, seed=0)(frames[None].as_subclass(torch.Tensor))[0]
    torch.testing.assert_close(out["video"].as_subclass(torch.Tensor), direct, rtol=0, atol=1e-6)
    batch = tv_tensors.Video(torch.rand(2, 2, 3, H, W))
    assert V2Shake(CAMERA, p=1.0, seed=1)(batch).shape == batch.shape
    with pytest.raises(ValueError, match="BoundingBoxes") as info:
        V2Shake(CAMERA, p=1.0, seed=0, clip_mode="move")({"video": video, "boxes": boxes})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("make, match", [
    (lambda: RandomCameraShake(CAMERA, seed=0)(torch.rand(1, 1, 2, 3, 8, 8)), r"\(B, T, C, H, W\)"),
    (lambda: RandomCameraShake(CAMERA, seed=0)(torch.rand(3, 8)), r"\(B, T, C, H, W\)"),
    (lambda: RandomCameraShake(KernelConfig(size=15, length_px=8.0), seed=0)(torch.rand(1, 2, 3, 8, 8)), "CameraConfig"),
    (lambda: RandomCameraShake(CAMERA, seed=0)(torch.rand(1, 0, 3, 8, 8)), "every side"),
    (lambda: RandomCameraShake(CAMERA, seed=0, pipeline="camera")(torch.rand(1, 2, 3, 8, 8)), "pipeline"),
    (lambda: RandomCameraShake(CAMERA, seed=0)(torch.rand(1, 2, 3, 8, 8) * 3), r"\[0, 1\]"),
    (lambda: RandomCameraShake(CAMERA, seed=0, fps=0), "fps"),
    (lambda: RandomCameraShake(CAMERA, seed=0, shutter_angle=400), "shutter_angle"),
    (lambda: RandomCameraShake(CAMERA, seed=0, clip_mode="wobble"), "clip_mode"),
    (lambda: V2Shake(CAMERA, seed=0)(tv_tensors.Video(torch.rand(2, 3, 3, 2, 8, 8))), "Video"),
])
def test_bad_clips_and_settings_fail_in_one_line(make, match):
    with pytest.raises((ValueError, TypeError), match=match) as info:
        make()
    assert "\n" not in str(info.value)
