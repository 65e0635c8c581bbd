"""Small shared helpers of the virtual Kinect: seeded random streams, smooth steps, point transforms."""
from __future__ import annotations

import zlib

import numpy as np


def rng(*keys: int | str) -> np.random.Generator:
    """A random generator that is a pure function of ``keys`` (ints or short strings)."""
    words: list[int] = []
    for k in keys:
        if isinstance(k, str):
            words.append(zlib.crc32(k.encode()))
        else:
            words.append(int(k) & 0xFFFFFFFF)
            words.append((int(k) >> 32) & 0xFFFFFFFF)
    return np.random.default_rng(np.random.SeedSequence(words))


def smoothstep(x: np.ndarray | float, lo: float, hi: float) -> np.ndarray:
    t = np.clip((np.asarray(x, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def normalize(v: np.ndarray, axis: int = -1) -> np.ndarray:
    v = np.asarray(v)
    if v.ndim == 2 and axis in (-1, 1):
        n = np.sqrt(np.einsum("ij,ij->i", v, v))[:, None]
    else:
        n = np.linalg.norm(v, axis=axis, keepdims=True)
    return v / np.maximum(n, 1e-12)


def xform(points: np.ndarray, rotation: np.ndarray, translation: np.ndarray | None = None) -> np.ndarray:
    """``points @ rotation.T + translation`` for N x 3 points, in the points' dtype. float32 goes
    through ``cv2.transform`` (a tight single pass; BLAS spends more time starting threads than
    computing on such thin matrices)."""
    import cv2

    if points.dtype == np.float32 and points.ndim == 2 and points.shape[1] == 3 and len(points):
        m = np.zeros((3, 4), np.float32)
        m[:, :3] = rotation
        if translation is not None:
            m[:, 3] = np.asarray(translation, np.float32).reshape(3)
        return cv2.transform(np.ascontiguousarray(points).reshape(-1, 1, 3), m).reshape(-1, 3)
    rt = np.ascontiguousarray(np.asarray(rotation).T, dtype=points.dtype)
    out = points @ rt
    if translation is not None:
        out += np.asarray(translation, dtype=points.dtype)
    return out


def matvec(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``rows @ vector`` for an N x 3 float32 array and a 3-vector (one pass, no BLAS threads)."""
    import cv2

    if not len(rows):
        return np.zeros(0, np.float32)
    v = np.asarray(vector, np.float32).reshape(1, 3)
    return cv2.transform(np.ascontiguousarray(rows, np.float32).reshape(-1, 1, 3), v).reshape(-1)


def rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise dot products of two N x 3 arrays."""
    return np.einsum("ij,ij->i", a, b)


def value_noise_2d(shape: tuple[int, int], cell: float, gen: np.random.Generator) -> np.ndarray:
    """Smooth random field in [0, 1] of ``shape`` with features about ``cell`` pixels wide."""
    import cv2

    h, w = shape
    gh, gw = max(2, int(np.ceil(h / cell)) + 2), max(2, int(np.ceil(w / cell)) + 2)
    grid = gen.random((gh, gw)).astype(np.float32)
    big = cv2.resize(grid, (int(gw * cell), int(gh * cell)), interpolation=cv2.INTER_CUBIC)
    return np.clip(big[:h, :w], 0.0, 1.0)


def fbm_2d(shape: tuple[int, int], cell: float, gen: np.random.Generator, octaves: int = 4) -> np.ndarray:
    """Fractal value noise in about [0, 1]."""
    acc = np.zeros(shape, np.float32)
    amp, total = 1.0, 0.0
    for _ in range(octaves):
        acc += amp * value_noise_2d(shape, max(cell, 1.5), gen)
        total += amp
        amp *= 0.5
        cell /= 2.0
    return acc / total
