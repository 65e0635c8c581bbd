"""The networks of the method (docs/design.md, "The generator and its training"): a compact
U-Net generator and a conditional discriminator. PyTorch only; the live app runs the exported
generator through ONNX Runtime.

Generator
    Colour crop (N, 3, S, S) in [-1, 1]  ->  depth (N, 1, S, S) in [-1, 1] (tanh), which
    ``sensors.encoding.tanh_to_levels`` turns into the 8-bit levels (0 = background).
    Fully convolutional encoder-decoder with ReLU inside and tanh at the output. Each encoder
    level halves the resolution with a strided 3x3 convolution (100 -> 50 -> 25 -> 13 -> 7
    for the default widths 16-32-48-64-96, so the deepest 3x3 convs see the whole face); the
    decoder doubles it with a 2x2 transposed convolution, crops to the skip's size (odd sizes
    round up on the way down) and ADDS the encoder feature of the same level (additive skips:
    a U-Net's information path at half the cost of concatenation), then refines with 3x3
    convolutions at the three coarsest levels. A 1x1 convolution makes the output channel.
    Batch norm is not used: the live path runs batch 1 and the exported graph stays a plain
    chain of convolutions.

    The size is set by the latency target (<= 3 ms per crop, batch 1, ONNX Runtime on one
    CPU core). Measured on a 2-core AMD EPYC (AVX2) with one ONNX Runtime thread: the
    default (87 M multiply-accumulates, 0.35 M parameters) takes 1.9 ms; 16-32-64-128 with
    two convs per level 4.6 ms (220 M MACs); a 3x3 single-channel output conv alone costs
    0.4 ms at 100x100 (ONNX Runtime's blocked layout has no fast path for one output
    channel), hence the 1x1 head. ``generator_macs`` counts the multiply-accumulates.

Discriminator
    Conditioned on the colour crop: the input is colour and depth concatenated (4 channels).
    Strided convolutions with LeakyReLU down to a small map, then fully connected layers to
    one logit. The sigmoid of the method is folded into the loss
    (``BCEWithLogitsLoss``, numerically stable); ``Discriminator.probability`` gives the
    sigmoid output where a probability is wanted. The discriminator is never exported.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GeneratorConfig:
    """The generator's shape.

    ``widths[i]`` is the channel width at level i (level 0 at full resolution, each further
    level at half the size of the one above). ``enc_convs[i]`` counts the extra 3x3 convs at
    level i after the level's entry conv (the colour conv at level 0, the strided conv
    below); ``dec_convs[i]`` counts the refining 3x3 convs after the skip addition at level
    i of the decoder (levels 0 .. L-2; the deepest level has no decoder step).
    """

    widths: tuple[int, ...] = (16, 32, 48, 64, 96)
    enc_convs: tuple[int, ...] = (0, 0, 1, 1, 1)
    dec_convs: tuple[int, ...] = (0, 0, 1, 1)

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or len(self.enc_convs) != len(self.widths) or len(self.dec_convs) != len(self.widths) - 1:
            raise ValueError(
                f"generator config needs >= 2 widths, one enc_convs entry per width and one dec_convs entry per "
                f"width but the last; got {self.widths}, {self.enc_convs}, {self.dec_convs}"
            )

    def to_dict(self) -> dict:
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> GeneratorConfig:
        return cls(**{k: tuple(int(x) for x in d[k]) for k in ("widths", "enc_convs", "dec_convs")})


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class Generator(nn.Module):
    """Compact U-Net: colour (N, 3, S, S) in [-1, 1] -> depth (N, 1, S, S) tanh in [-1, 1]."""

    def __init__(self, config: GeneratorConfig = GeneratorConfig()) -> None:
        super().__init__()
        self.config = config
        w, ne, nd = config.widths, config.enc_convs, config.dec_convs
        # level 0 at full resolution: one conv from colour, then enc_convs[0] more
        self.stem = nn.ModuleList([_conv(3, w[0])] + [_conv(w[0], w[0]) for _ in range(ne[0])])
        # levels 1..L-1: a strided conv, then enc_convs[i] more at that resolution
        self.down = nn.ModuleList()
        for i in range(1, len(w)):
            self.down.append(nn.ModuleList([_conv(w[i - 1], w[i], stride=2)] + [_conv(w[i], w[i]) for _ in range(ne[i])]))
        # decoder: per level L-2..0 an up-conv from the level below, add the skip, refine
        self.up = nn.ModuleList()
        self.refine = nn.ModuleList()
        for i in range(len(w) - 2, -1, -1):
            self.up.append(nn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2))
            self.refine.append(nn.ModuleList([_conv(w[i], w[i]) for _ in range(nd[i])]))
        # 1x1: a 3x3 conv to a single channel costs as much as a 16-channel one in ONNX Runtime
        self.head = nn.Conv2d(w[0], 1, 1)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (Kaiming) initialisation for the ReLU layers, zero biases, a small output layer.

        Without normalisation layers, PyTorch's default conv initialisation shrinks the signal
        at every layer (by about 6x in second moment through conv + ReLU); He initialisation
        keeps it, which trains this plain network markedly faster.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
                if isinstance(m, nn.ConvTranspose2d):
                    # a 2x2 stride-2 transposed conv feeds each output pixel from one input pixel
                    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / m.in_channels))
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.head.weight, 0.0, 0.1 / math.sqrt(self.head.in_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.stem:
            x = F.relu(conv(x))
        skips = [x]
        for level in self.down:
            for conv in level:
                x = F.relu(conv(x))
            skips.append(x)
        skips.pop()  # the deepest level is x itself
        for up, refine in zip(self.up, self.refine, strict=True):
            skip = skips.pop()
            x = up(x)[:, :, : skip.shape[2], : skip.shape[3]]
            x = F.relu(x + skip)
            for conv in refine:
                x = F.relu(conv(x))
        return torch.tanh(self.head(x))


class Discriminator(nn.Module):
    """Conditional discriminator: colour (N, 3, S, S) and depth (N, 1, S, S) -> one logit each.

    Convolutions (4x4, stride 2, LeakyReLU 0.2) take the concatenated 4-channel input from
    S to about S / 16, an adaptive pooling fixes the map at 4x4 whatever S is, and two fully
    connected layers give the logit (apply a sigmoid, or ``probability``, for P(real)).
    """

    def __init__(self, widths: tuple[int, ...] = (32, 64, 128, 128), hidden: int = 128) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 4
        for cout in widths:
            layers += [nn.Conv2d(cin, cout, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
            cin = cout
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(4))
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(cin * 16, hidden), nn.LeakyReLU(0.2, inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, color: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(torch.cat([color, depth], dim=1))).squeeze(1)

    def probability(self, color: torch.Tensor, depth: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.forward(color, depth))


def widen(model: Generator, config: GeneratorConfig) -> Generator:
    """A generator of the wider ``config`` that computes exactly what ``model`` computes.

    Every layer keeps its weights in the corner of the wider tensor; the new output channels
    get fresh He weights (live, so training can use them), and every weight that reads a new
    channel into an old one is zero. Since each consumer of a widened tensor (the next conv, the
    skip's addition then the next conv, the output head) ignores the new channels, the output
    is unchanged until training moves those zero weights. Raises ValueError unless ``config``
    has the same levels and convs as ``model`` and no narrower level.
    """
    old = model.config
    if (old.enc_convs, old.dec_convs) != (config.enc_convs, config.dec_convs) or len(old.widths) != len(config.widths) \
            or any(n < o for n, o in zip(config.widths, old.widths, strict=True)):
        raise ValueError(f"widths {','.join(map(str, old.widths))} can only be widened level by level, with the same "
                         f"convs per level, not to {','.join(map(str, config.widths))}")
    wide = Generator(config)
    with torch.no_grad():
        for big, small in zip(wide.modules(), model.modules(), strict=True):
            if not isinstance(big, nn.Conv2d | nn.ConvTranspose2d):
                continue
            # ConvTranspose2d weights are (in, out, k, k), Conv2d weights (out, in, k, k)
            w_big = big.weight if isinstance(big, nn.Conv2d) else big.weight.transpose(0, 1)
            w_small = small.weight if isinstance(small, nn.Conv2d) else small.weight.transpose(0, 1)
            n_out, n_in = w_small.shape[:2]
            w_big[:n_out, :n_in] = w_small
            w_big[:n_out, n_in:] = 0.0
            big.bias[:n_out] = small.bias
    return wide


def generator_macs(model: Generator, size_px: int = 100) -> int:
    """Multiply-accumulates of one forward pass at batch 1 (convolutions and transposed convs)."""
    total = 0

    def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.ConvTranspose2d):
            # every input pixel scatters a k x k x Cout patch
            h, w = inputs[0].shape[2:]
            total += h * w * module.in_channels * module.out_channels * module.kernel_size[0] * module.kernel_size[1]
        elif isinstance(module, nn.Conv2d):
            h, w = output.shape[2:]
            total += h * w * module.in_channels * module.out_channels * module.kernel_size[0] * module.kernel_size[1]

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size_px, size_px))
    finally:
        for h in handles:
            h.remove()
    return total


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
