"""Point splatting with an exact z-buffer: the rasteriser of the virtual Kinect.

Every surface (head, neck, hands, clothes) is a dense cloud of points; a point covers the 2x2
pixels around its projection, and each pixel keeps its nearest point. The z-buffer is one
``np.maximum.at`` over 64-bit keys (inverted depth in the high bits, the point's index in the
low bits), so ties and write order cannot change the result: rendering is deterministic.
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
    if footprint == 2:
        iu = np.floor(u).astype(np.int64)
        iv = np.floor(v).astype(np.int64)
        ok = (iu >= -1) & (iu < width) & (iv >= -1) & (iv < height) & (z > 0)
    else:
        iu = np.floor(u + 0.5).astype(np.int64)
        iv = np.floor(v + 0.5).astype(np.int64)
        ok = (iu >= 0) & (iu < width) & (iv >= 0) & (iv < height) & (z > 0)
    idx = np.flatnonzero(ok)
    iu, iv = iu[idx], iv[idx]
    zq = np.minimum(np.asarray(z[idx], dtype=np.float64) * _Z_SCALE, _Z_LIMIT - 1).astype(np.int64)
    key = ((_Z_LIMIT - zq) << _INDEX_BITS) | idx
    buf = np.zeros((height + 2) * (width + 2), np.int64)  # one pixel of margin all round
    lin = (iv + 1) * (width + 2) + (iu + 1)
    stride = width + 2
    if footprint == 2:
        if big is not None and big.any():
            b = big[idx]
            lb = (np.floor(v[idx][b] + 0.5).astype(np.int64) + 1) * stride + np.floor(u[idx][b] + 0.5).astype(np.int64) + 1
            lb = np.clip(lb, stride + 1, buf.size - stride - 2)
            kb = key[b]
            lin, key = lin[~b], key[~b]
            off9 = np.array([-stride - 1, -stride, -stride + 1, -1, 0, 1, stride - 1, stride, stride + 1], np.int64)
            lin9 = (lb[:, None] + off9).ravel()
            key9 = np.repeat(kb, 9)
        else:
            lin9 = key9 = None
        lin = (lin[:, None] + np.array([0, 1, stride, stride + 1], np.int64)).ravel()
        key = np.repeat(key, 4)
        if lin9 is not None:
            lin = np.concatenate([lin, lin9])
            key = np.concatenate([key, key9])
    np.maximum.at(buf, lin, key)
    buf = buf.reshape(height + 2, width + 2)[1:-1, 1:-1]
    out = (buf & _INDEX_MASK).astype(np.int32)
    out[buf == 0] = -1
    return out
