"""Point splatting with an exact z-buffer: the rasteriser of the virtual Kinect.

Every surface (head, neck, hands, clothes) is a dense cloud of points; a point covers the 2x2
pixels around its projection (the 3x3 pixels around it where points are sparse), and each pixel
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


def splat_nearest(
    u: np.ndarray, v: np.ndarray, z: np.ndarray, width: int, height: int, footprint: int = 2,
    big: np.ndarray | None = None,
) -> np.ndarray:
    """Index of the nearest point per pixel of a ``height`` x ``width`` image (-1 = none).

    ``u``, ``v`` are pixel coordinates (pixel centres at integers), ``z`` the depth in mm (> 0).
    ``footprint`` 1 writes the pixel nearest to each point, 2 the 2x2 pixels around it (a regular
    grid of points up to 2 px apart then leaves no gaps). Points flagged in ``big`` (sparse
    regions) cover the 3x3 pixels around them instead.
    """
    n = len(z)
    if n >= _INDEX_MASK:
        raise ValueError("too many points for one splat")
    stride = width + 2
    buf = np.zeros((height + 2) * stride, np.int64)  # one pixel of margin all round
    if footprint == 2:
        fu, fv = np.floor(u), np.floor(v)
        ok = (fu >= -1) & (fu < width) & (fv >= -1) & (fv < height) & (z > 0)
    else:
        fu, fv = np.floor(u + 0.5), np.floor(v + 0.5)
        ok = (fu >= 0) & (fu < width) & (fv >= 0) & (fv < height) & (z > 0)
    idx = np.flatnonzero(ok)
    zq = np.minimum(z[idx] * _Z_SCALE, _Z_LIMIT - 1).astype(np.int64)
    key = ((_Z_LIMIT - zq) << _INDEX_BITS) | idx
    lin = (fv[idx].astype(np.int64) + 1) * stride + (fu[idx].astype(np.int64) + 1)
    if footprint != 2:
        np.maximum.at(buf, lin, key)
    else:
        if big is not None:
            b = big[idx]
            if b.any():
                # sparse points: the 3x3 pixels around the nearest pixel centre
                lb = lin[b] + (u[idx][b] - fu[idx][b] >= 0.5) + stride * (v[idx][b] - fv[idx][b] >= 0.5)
                lb = np.clip(lb, stride + 1, buf.size - stride - 2)
                kb = key[b]
                for off in (-stride - 1, -stride, -stride + 1, -1, 0, 1, stride - 1, stride, stride + 1):
                    np.maximum.at(buf, lb + off, kb)
                lin, key = lin[~b], key[~b]
        for off in (0, 1, stride, stride + 1):
            np.maximum.at(buf, lin + off, key)
    buf = buf.reshape(height + 2, stride)[1:-1, 1:-1]
    out = (buf & _INDEX_MASK).astype(np.int32)
    out[buf == 0] = -1
    return out
