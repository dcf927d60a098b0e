"""WGAN-GP terms against closed forms, and the VGG19 conv3_3 perceptual loss's weight sources."""

import logging
import math

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402

from blurgen.deblur import losses  # noqa: E402
from blurgen.deblur.losses import PerceptualLoss, critic_loss, generator_adv_loss, gradient_penalty, vgg19_conv3_3  # noqa: E402
from blurgen.deblur.models import PatchCritic  # noqa: E402

torch.set_num_threads(1)


class LinearCritic(nn.Module):
    """D(x) = 1x1 conv without bias: the gradient of the summed map is w_c at every pixel."""

    def __init__(self, w):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 1, bias=False, dtype=torch.float64)
        with torch.no_grad():
            self.conv.weight.copy_(torch.tensor(w, dtype=torch.float64).view(1, 3, 1, 1))

    def forward(self, x):
        return self.conv(x)


def test_gradient_penalty_of_linear_critic_matches_closed_form():
    h, w = 4, 5
    critic = LinearCritic([0.1, -0.2, 0.05])
    real = torch.randn(3, 3, h, w, dtype=torch.float64)
    fake = torch.randn(3, 3, h, w, dtype=torch.float64)
    norm = math.sqrt(h * w * (0.1 ** 2 + 0.2 ** 2 + 0.05 ** 2))
    gp = gradient_penalty(critic, real, fake)
    assert gp.item() == pytest.approx((norm - 1) ** 2, rel=1e-12)


def test_gradient_penalty_trains_the_critic_through_double_backward():
    h, w = 3, 3
    wv = torch.tensor([0.3, 0.1, -0.4], dtype=torch.float64)
    critic = LinearCritic(wv.tolist())
    real = torch.randn(2, 3, h, w, dtype=torch.float64)
    gp = gradient_penalty(critic, real, torch.zeros_like(real))
    gp.backward()
    # gp = (sqrt(HW)||w|| - 1)^2  ->  d gp / dw = 2 (sqrt(HW)||w|| - 1) sqrt(HW) w / ||w||
    s = math.sqrt(h * w)
    expected = 2 * (s * wv.norm() - 1) * s * wv / wv.norm()
    assert torch.allclose(critic.conv.weight.grad.view(3), expected, rtol=1e-10)


def test_gradient_penalty_of_quadratic_critic_uses_the_interpolates():
    # D(x) = 0.5 ||x||^2 per sample -> gradient x_hat, norm ||alpha real + (1 - alpha) fake||.
    def critic(x):
        return 0.5 * x.pow(2).flatten(1).sum(1)

    real = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    fake = torch.randn(4, 3, 2, 2, dtype=torch.float64)
    alpha = torch.tensor([0.0, 0.25, 0.5, 1.0], dtype=torch.float64)
    xhat = alpha.view(4, 1, 1, 1) * real + (1 - alpha.view(4, 1, 1, 1)) * fake
    expected = ((xhat.flatten(1).norm(dim=1) - 1) ** 2).mean()
    got = gradient_penalty(critic, real, fake, alpha=alpha)
    assert got.item() == pytest.approx(expected.item(), rel=1e-12)


def test_gradient_penalty_is_a_per_sample_mean_independent_of_batch_split():
    torch.manual_seed(0)
    critic = PatchCritic(ndf=4).double()
    real = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    fake = torch.rand(4, 3, 32, 32, dtype=torch.float64) * 2 - 1
    alpha = torch.rand(4, dtype=torch.float64)
    whole = gradient_penalty(critic, real, fake, alpha=alpha)
    halves = [gradient_penalty(critic, real[i:i + 2], fake[i:i + 2], alpha=alpha[i:i + 2]) for i in (0, 2)]
    assert whole.item() == pytest.approx(sum(h.item() for h in halves) / 2, rel=1e-10)


def test_gradient_penalty_draws_alpha_reproducibly_from_a_generator():
    critic = lambda x: 0.5 * x.pow(2).flatten(1).sum(1)  # noqa: E731
    real, fake = torch.randn(3, 3, 2, 2), torch.randn(3, 3, 2, 2)
    a = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    b = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(5))
    c = gradient_penalty(critic, real, fake, generator=torch.Generator().manual_seed(6))
    assert a.item() == b.item() != c.item()


def test_critic_loss_is_wasserstein_estimate_plus_weighted_penalty():
    torch.manual_seed(1)
    critic = PatchCritic(ndf=4)
    real = torch.rand(2, 3, 32, 32) * 2 - 1
    fake = (torch.rand(2, 3, 32, 32) * 2 - 1).requires_grad_(True)
    alpha = torch.tensor([0.3, 0.7])
    loss, stats = critic_loss(critic, real, fake, gp_weight=10.0, alpha=alpha)
    d_real, d_fake = critic(real).mean(), critic(fake).mean()
    gp = gradient_penalty(critic, real, fake, alpha=alpha)
    assert loss.item() == pytest.approx((d_fake - d_real + 10 * gp).item(), rel=1e-5)
    assert stats["wasserstein"].item() == pytest.approx((d_real - d_fake).item(), rel=1e-5)
    assert stats["gp"].item() == pytest.approx(gp.item(), rel=1e-5)
    assert all(not v.requires_grad for v in stats.values())
    loss.backward()
    assert fake.grad is None  # the critic step never reaches the generator
    assert all(p.grad is not None for p in critic.parameters())


def test_generator_adversarial_loss_pushes_fake_towards_higher_scores():
    critic = LinearCritic([1.0, 1.0, 1.0])
    fake = torch.zeros(1, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    loss = generator_adv_loss(critic, fake)
    loss.backward()
    assert loss.item() == 0.0
    # -mean(sum_c x_c) over 4 pixels: each input gets gradient -1/4.
    assert torch.allclose(fake.grad, torch.full_like(fake, -0.25))


def _save_random_vgg(path, seed=0):
    torch.manual_seed(seed)
    features = vgg19_conv3_3()
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    return features


def test_perceptual_loss_is_zero_for_identical_images_and_positive_otherwise():
    loss = PerceptualLoss(allow_random=True, weights_path=None)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    assert loss(x, x).item() == 0.0
    assert loss(x, -x).item() > 0


def test_perceptual_loss_trains_only_the_fake_image(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    loss = PerceptualLoss(allow_random=True)
    assert loss.mode == "random-vgg19"
    fake = (torch.rand(1, 3, 24, 24) * 2 - 1).requires_grad_(True)
    sharp = torch.rand(1, 3, 24, 24) * 2 - 1
    loss(fake, sharp).backward()
    assert fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in loss.parameters())
    loss.train()
    assert not loss.features.training


def test_perceptual_loss_matches_torchvision_vgg19_features(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    path = tmp_path / "vgg.pth"
    torch.manual_seed(0)
    tv = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])  # vgg19().features
    torch.save({f"features.{k}": v for k, v in tv.state_dict().items()}, path)
    loss = PerceptualLoss(weights_path=str(path), weight=100.0)
    assert loss.mode == "vgg19"
    a, b = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        fa = tv[:15](((a + 1) / 2 - mean) / std)
        fb = tv[:15](((b + 1) / 2 - mean) / std)
        expected = 100.0 * torch.mean((fa - fb) ** 2)
        assert loss(a, b).item() == pytest.approx(expected.item(), rel=1e-5)


def test_perceptual_loss_finds_weights_in_the_hub_cache(tmp_path, monkeypatch):
    (tmp_path / "checkpoints").mkdir()
    _save_random_vgg(tmp_path / "checkpoints" / "vgg19-dcbb9e9d.pth")
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    loss = PerceptualLoss()
    assert loss.mode == "vgg19"
    assert loss.weights_source.endswith("vgg19-dcbb9e9d.pth")


def test_perceptual_loss_without_weights_warns_and_falls_back_to_pixel_mse(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def no_download(*args, **kwargs):
        raise AssertionError("PerceptualLoss tried to download")
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    with caplog.at_level(logging.WARNING, logger=losses.__name__):
        loss = PerceptualLoss(weight=100.0)
    assert loss.mode == "pixel-mse"
    assert "falls back to pixel MSE" in caplog.text
    a, b = torch.zeros(1, 3, 8, 8), torch.full((1, 3, 8, 8), 0.1)
    assert loss(a, b).item() == pytest.approx(100.0 * 0.01, rel=1e-5)


def test_perceptual_loss_rejects_a_file_that_is_not_vgg19(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pth"):
        PerceptualLoss(weights_path=str(junk))
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not VGG19"):
        PerceptualLoss(weights_path=str(other))
