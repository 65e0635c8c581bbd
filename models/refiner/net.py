"""The head-centre refiner's network (torch; offline only: the live path runs its ONNX export
through ``models.refiner.runtime``).

Input: (N, 2, S, S) uint8 planes from ``models.refiner.runtime.refine_input`` (8-bit depth
levels around the rough centre's distance, 0 = invalid; grey colour). The network turns them
into relative depth, a valid mask and centred grey itself, so the exported graph takes the
planes as they are. Output: (N, 4) offset x, y (crop pixels), depth difference (units of
``DZ_SCALE_MM``) and the head logit.
"""
from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(cin: int, cout: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class RefinerNet(nn.Module):
    """Strided 3x3 convolutions with batch norm on (relative depth, mask, grey), 64 -> 32 -> 16
    -> 8 -> 4, flattened (where things are matters) into two linear layers."""

    def __init__(self, size_px: int) -> None:
        super().__init__()
        self.features = nn.Sequential(*_conv_bn_relu(3, 24, 2), *_conv_bn_relu(24, 32, 1), *_conv_bn_relu(32, 48, 2),
                                      *_conv_bn_relu(48, 48, 1), *_conv_bn_relu(48, 64, 2), *_conv_bn_relu(64, 96, 2))
        side = size_px
        for _ in range(4):  # the four stride-2 convolutions
            side = (side + 1) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(96 * side * side, 128), nn.ReLU(inplace=True),
                                  nn.Linear(128, 4))

    def forward(self, planes: torch.Tensor) -> torch.Tensor:
        p = planes.to(torch.float32)
        levels, grey = p[:, 0:1], p[:, 1:2]
        valid = (levels > 0).to(torch.float32)
        x = torch.cat([(levels / 128.0 - 1.0) * valid, valid, grey / 255.0 - 0.5], dim=1)
        return self.head(self.features(x))
