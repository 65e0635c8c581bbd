"""Point splatting with an exact z-buffer: the rasteriser of the virtual Kinect.

Every surface (head, neck, hands, clothes) is a dense cloud of points; a point covers the 2x2
pixels around its projection (a larger square where points are sparse), and each pixel
keeps its nearest point. The z-buffer is ``np.maximum.at`` over 64-bit keys (inverted depth in
the high bits, the point's index in the low bits), so ties and write order cannot change the
result: rendering is deterministic.
"""
from __future__ import annotations

import numpy as np

_INDEX_BITS = 21
_INDEX_MASK = (1 << _INDEX_BITS) - 1
_Z_SCALE = 16.0  # 1/16 mm depth resolution in the key
_Z_LIMIT = (1 << (62 - _INDEX_BITS)) - 1
_MARGIN = 4  # pixels of overhang kept off the image (a 7x7 square reaches 3 past its pixel)


def splat_nearest(
    u: np.ndarray, v: np.ndarray, z: np.ndarray, width: int, height: int, footprint: int = 2,
    big: np.ndarray | None = None,
) -> np.ndarray:
    """Index of the nearest point per pixel of a ``height`` x ``width`` image (-1 = none).

    ``u``, ``v`` are pixel coordinates (pixel centres at integers), ``z`` the depth in mm (> 0).
    ``footprint`` 1 writes the pixel nearest to each point, 2 the 2x2 pixels around it (a regular
    grid of points up to 2 px apart then leaves no gaps). ``big`` (per point: False/0, or True/1
    for 3x3, 2 for 5x5, 3 for 7x7) gives sparse points larger squares around their nearest pixel.
    """
    n = len(z)
    if n >= _INDEX_MASK:
        raise ValueError("too many points for one splat")
    m = _MARGIN
    stride = width + 2 * m
    buf = np.zeros((height + 2 * m) * stride, np.int64)  # a margin all round takes the overhang
    if footprint == 2:
        fu, fv = np.floor(u), np.floor(v)
        ok = (fu >= -1) & (fu < width) & (fv >= -1) & (fv < height) & (z > 0)
    else:
        fu, fv = np.floor(u + 0.5), np.floor(v + 0.5)
        ok = (fu >= 0) & (fu < width) & (fv >= 0) & (fv < height) & (z > 0)
    idx = np.flatnonzero(ok)
    zq = np.minimum(z[idx] * _Z_SCALE, _Z_LIMIT - 1).astype(np.int64)
    key = ((_Z_LIMIT - zq) << _INDEX_BITS) | idx
    lin = (fv[idx].astype(np.int64) + m) * stride + (fu[idx].astype(np.int64) + m)
    if footprint != 2:
        np.maximum.at(buf, lin, key)
    else:
        if big is not None:
            sizes = np.asarray(big)[idx].astype(np.int8)
            # sparse points: odd squares (3x3, 5x5, 7x7) centred on the nearest pixel
            for level in (1, 2, 3):
                b = sizes == level
                if not b.any():
                    continue
                lb = lin[b] + (u[idx][b] - fu[idx][b] >= 0.5) + stride * (v[idx][b] - fv[idx][b] >= 0.5)
                r = np.arange(-level, level + 1)
                offsets = (r[:, None] * stride + r[None, :]).ravel()
                np.maximum.at(buf, (lb[:, None] + offsets).ravel(), np.repeat(key[b], len(offsets)))
            keep = sizes == 0
            lin, key = lin[keep], key[keep]
        for off in (0, 1, stride, stride + 1):
            np.maximum.at(buf, lin + off, key)
    buf = buf.reshape(height + 2 * m, stride)[m:-m, m:-m]
    out = (buf & _INDEX_MASK).astype(np.int32)
    out[buf == 0] = -1
    return out
