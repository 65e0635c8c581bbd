"""The generator and discriminator: shapes, ranges, conditioning and the cost count."""
from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from models.generator.net import (  # noqa: E402
    Discriminator,
    Generator,
    GeneratorConfig,
    count_parameters,
    generator_macs,
    widen,
)


@pytest.mark.parametrize("size", [100, 64, 37])
def test_generator_maps_colour_to_one_channel_of_the_same_size_in_tanh_range(size):
    torch.manual_seed(0)
    g = Generator().eval()
    x = torch.rand(3, 3, size, size) * 2 - 1
    with torch.no_grad():
        y = g(x)
    assert y.shape == (3, 1, size, size)
    assert float(y.min()) >= -1.0 and float(y.max()) <= 1.0
    # fully convolutional, no batch coupling: each sample's output depends on that sample only
    with torch.no_grad():
        alone = g(x[1:2])
    torch.testing.assert_close(alone, y[1:2], atol=1e-5, rtol=0)


def test_generator_is_trainable_end_to_end():
    torch.manual_seed(0)
    g = Generator()
    y = g(torch.rand(2, 3, 100, 100))
    y.mean().backward()
    assert all(p.grad is not None for p in g.parameters())


def test_discriminator_gives_one_logit_per_pair_and_depends_on_the_colour():
    torch.manual_seed(0)
    d = Discriminator().eval()
    color = torch.rand(4, 3, 100, 100) * 2 - 1
    depth = torch.rand(4, 1, 100, 100) * 2 - 1
    with torch.no_grad():
        logit = d(color, depth)
        other = d(torch.flip(color, dims=[0]), depth)
        p = d.probability(color, depth)
    assert logit.shape == (4,)
    assert torch.all((p > 0) & (p < 1))
    torch.testing.assert_close(p, torch.sigmoid(logit))
    assert not torch.allclose(logit, other)  # conditioned on the colour crop
    with torch.no_grad():
        assert d(torch.rand(2, 3, 64, 64), torch.rand(2, 1, 64, 64)).shape == (2,)


def test_mac_count_matches_a_hand_count():
    s = 40
    g = Generator(GeneratorConfig(widths=(4, 8), enc_convs=(1, 0), dec_convs=(1,)))
    h = s // 2
    expected = (
        s * s * 3 * 4 * 9      # stem conv 3 -> 4
        + s * s * 4 * 4 * 9    # extra conv at level 0
        + h * h * 4 * 8 * 9    # strided conv 4 -> 8
        + h * h * 8 * 4 * 4    # 2x2 transposed conv 8 -> 4, per input pixel
        + s * s * 4 * 4 * 9    # refining conv at level 0
        + s * s * 4 * 1        # 1x1 head
    )
    assert generator_macs(g, s) == expected


def test_default_generator_fits_the_budgets():
    g = Generator()
    assert generator_macs(g, 100) < 100e6           # ~87 M: <= 3 ms per crop on one CPU core (models/README.md)
    assert count_parameters(g) * 4 < 20 * 1024 ** 2  # the shipped file stays far under 20 MB


def test_config_round_trip_and_validation():
    cfg = GeneratorConfig(widths=(8, 16, 32), enc_convs=(0, 1, 1), dec_convs=(0, 1))
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError):
        GeneratorConfig(widths=(8, 16), enc_convs=(0,), dec_convs=(0,))


def test_widening_keeps_the_output_and_gives_the_new_channels_gradients():
    torch.manual_seed(0)
    g = Generator().eval()
    for p in g.parameters():  # trained-looking weights: biases non-zero too
        p.data += 0.05 * torch.randn_like(p)
    wide_cfg = GeneratorConfig((16, 32, 64, 96, 128), (0, 0, 1, 1, 1), (0, 0, 1, 1))
    wide = widen(g, wide_cfg).eval()
    assert wide.config == wide_cfg and count_parameters(wide) > count_parameters(g)
    x = torch.rand(2, 3, 100, 100) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(wide(x), g(x), atol=1e-6, rtol=0)
    # level 2 grew from 48 to 64 channels: the zero weights that read its new channels into the
    # old ones get gradients at once, the new channels' own weights after that first step
    opt = torch.optim.SGD(wide.parameters(), lr=0.1)
    for _ in range(2):
        opt.zero_grad()
        wide(x).square().mean().backward()
        assert float(wide.down[1][1].weight.grad[:48, 48:].abs().sum()) > 0
        opt.step()
    assert float(wide.down[1][0].weight.grad[48:].abs().sum()) > 0


@pytest.mark.parametrize("widths", [(16, 32, 40, 64, 96), (16, 32, 48, 64)])
def test_widening_refuses_a_narrower_or_different_network(widths):
    enc = tuple(0 if i < 2 else 1 for i in range(len(widths)))
    dec = tuple(0 if i < 2 else 1 for i in range(len(widths) - 1))
    with pytest.raises(ValueError, match="widened level by level"):
        widen(Generator(), GeneratorConfig(widths, enc, dec))
