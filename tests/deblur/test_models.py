"""DeblurGAN networks: architecture facts of the paper pinned, shapes, configs."""

import pytest

torch = pytest.importorskip("torch")

from blurgen.deblur.models import (  # noqa: E402
    GENERATORS,
    PatchCritic,
    ResnetGenerator,
    build_generator,
    count_parameters,
    generator_config,
    pad_to_multiple,
)

torch.set_num_threads(1)


def _expected_generator_parameters(width=64, n_blocks=9, c=3):
    """Closed-form count: convs with biases (affine-free InstanceNorm has no parameters)."""
    def conv(cin, cout, k):
        return cin * cout * k * k + cout
    w = width
    return (conv(c, w, 7) + conv(w, 2 * w, 3) + conv(2 * w, 4 * w, 3)
            + n_blocks * 2 * conv(4 * w, 4 * w, 3)
            + conv(4 * w, 2 * w, 3) + conv(2 * w, w, 3) + conv(w, c, 7))


def test_default_generator_has_the_papers_11_4_million_parameters():
    g = ResnetGenerator()
    assert count_parameters(g) == 11_378_179
    assert count_parameters(g) == _expected_generator_parameters()


@pytest.mark.parametrize("width,n_blocks", [(8, 2), (16, 0), (12, 5)])
def test_generator_parameter_count_follows_width_and_blocks(width, n_blocks):
    assert count_parameters(ResnetGenerator(width=width, n_blocks=n_blocks)) == \
        _expected_generator_parameters(width, n_blocks)


def test_default_critic_parameter_count():
    # 3->64 (bias), 64->128, 128->256 (stride 2), 256->512 (stride 1), 512->1; all 4x4 with biases.
    def conv(cin, cout):
        return cin * cout * 16 + cout
    expected = conv(3, 64) + conv(64, 128) + conv(128, 256) + conv(256, 512) + conv(512, 1)
    assert count_parameters(PatchCritic()) == expected


@pytest.mark.parametrize("h,w", [(1, 1), (3, 5), (8, 8), (17, 31), (37, 50), (64, 33)])
def test_generator_output_shape_equals_input_shape_for_any_size(h, w):
    g = build_generator("resnet", width=4, n_blocks=1).eval()
    x = torch.rand(2, 3, h, w) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1


def test_generator_returns_input_when_residual_is_zero():
    g = build_generator("resnet", width=4, n_blocks=2).eval()
    with torch.no_grad():
        last = g.tail[1]
        last.weight.zero_()
        last.bias.zero_()
    x = torch.rand(1, 3, 21, 30) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g(x), x)


def test_generator_output_is_clamped_to_valid_range():
    g = build_generator("resnet", width=4, n_blocks=1).eval()
    with torch.no_grad():
        g.tail[1].bias.fill_(10.0)  # tanh -> ~1, so x + 1 leaves [-1, 1] unless clamped
    x = torch.full((1, 3, 16, 16), 0.5)
    with torch.no_grad():
        y = g(x)
    assert torch.equal(y, torch.ones_like(x))


def test_padding_does_not_leak_into_the_crop_for_multiple_of_four_sizes():
    x = torch.rand(1, 3, 16, 20)
    assert pad_to_multiple(x) is x
    padded = pad_to_multiple(torch.rand(1, 3, 17, 22))
    assert padded.shape[-2:] == (20, 24)


def test_generator_is_differentiable_end_to_end():
    g = build_generator("resnet", width=4, n_blocks=1)
    x = torch.rand(1, 3, 19, 23) * 2 - 1
    g(x).square().mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_dropout_is_active_in_train_mode_and_off_in_eval_mode():
    g = build_generator("resnet", width=4, n_blocks=2, dropout=0.5)
    x = torch.rand(1, 3, 16, 16) * 2 - 1
    torch.manual_seed(0)
    with torch.no_grad():
        a, b = g(x), g(x)
        assert not torch.equal(a, b)
        g.eval()
        assert torch.equal(g(x), g(x))


def test_generator_config_rebuilds_an_identical_network():
    g = build_generator("resnet", width=6, n_blocks=3, dropout=0.0, norm="instance")
    config = generator_config(g)
    assert config["width"] == 6 and config["n_blocks"] == 3 and config["name"] == "resnet"
    clone = build_generator(**config)
    clone.load_state_dict(g.state_dict())
    x = torch.rand(1, 3, 12, 12) * 2 - 1
    with torch.no_grad():
        assert torch.equal(g.eval()(x), clone.eval()(x))


def test_registry_and_norm_names_are_validated():
    assert GENERATORS["resnet"] is ResnetGenerator
    with pytest.raises(ValueError, match="generator name"):
        build_generator("unet")
    with pytest.raises(ValueError, match="norm"):
        ResnetGenerator(norm="group")
    with pytest.raises(ValueError, match="dropout"):
        ResnetGenerator(dropout=1.0)


def test_norm_and_activation_are_pluggable_factories():
    g = ResnetGenerator(width=4, n_blocks=1, norm=lambda c: torch.nn.GroupNorm(2, c), act=torch.nn.SiLU)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in g.modules())
    assert any(isinstance(m, torch.nn.SiLU) for m in g.modules())
    # GroupNorm learns a shift, so the convs before it drop their (redundant) bias.
    assert g.down[0].bias is None
    with pytest.raises(ValueError, match="custom"):
        generator_config(g)


def test_batchnorm_generator_has_no_conv_bias_before_norm():
    g = ResnetGenerator(width=4, n_blocks=1, norm="batch")
    assert g.head[1].bias is None and g.tail[1].bias is not None


def test_critic_scores_patches_without_sigmoid():
    c = PatchCritic(ndf=8)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = c(x)
    assert y.shape == (2, 1, 11, 11)  # 64 -> 33 -> 17 -> 9 (stride 2) -> 10 -> 11 (stride 1, pad 2)
    assert not isinstance(c.net[-1], torch.nn.Sigmoid)
    with torch.no_grad():
        c.net[-1].bias.fill_(5.0)
    assert c(x).max() > 1.0  # unbounded: a WGAN critic


def test_critic_layer_count_follows_n_layers():
    c = PatchCritic(ndf=4, n_layers=2)
    convs = [m for m in c.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [m.stride[0] for m in convs] == [2, 2, 1, 1]
    assert [m.out_channels for m in convs] == [4, 8, 16, 1]
