"""Generic point-surface primitives for the body, the props and the occluders.

Each builder returns a :class:`PointSet` in its own local frame (mm, camera-like axes: x right,
y down, z away from the camera), with outward normals and per-point material attributes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from sensors.virtual._util import normalize, xform


@dataclass
class PointSet:
    """Points with normals and material, one row per point (float32 arrays)."""

    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    specular: np.ndarray
    gloss: np.ndarray
    ir: np.ndarray
    material: np.ndarray
    spacing: float = 1.5   # typical distance between neighbouring points, mm

    def __len__(self) -> int:
        return len(self.points)

    @staticmethod
    def make(points, normals, albedo, specular=0.05, gloss=10.0, ir=0.5, material=9, spacing=1.5) -> "PointSet":
        n = len(points)
        f = np.float32
        return PointSet(
            np.ascontiguousarray(points, f), normalize(np.asarray(normals, np.float64)).astype(f),
            np.ascontiguousarray(np.broadcast_to(np.asarray(albedo, f), (n, 3)), f),
            np.ascontiguousarray(np.broadcast_to(np.asarray(specular, f), (n,)), f),
            np.ascontiguousarray(np.broadcast_to(np.asarray(gloss, f), (n,)), f),
            np.ascontiguousarray(np.broadcast_to(np.asarray(ir, f), (n,)), f),
            np.ascontiguousarray(np.broadcast_to(np.asarray(material, np.uint8), (n,)), np.uint8),
            float(spacing),
        )

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> "PointSet":
        return PointSet(xform(self.points, rotation, translation), xform(self.normals, rotation),
                        self.albedo, self.specular, self.gloss, self.ir, self.material, self.spacing)

    @staticmethod
    def concat(sets: list["PointSet"]) -> "PointSet":
        sets = [s for s in sets if len(s)]
        if not sets:
            return PointSet.make(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(3))
        return PointSet(*(np.concatenate([getattr(s, k) for s in sets]) for k in
                          ("points", "normals", "albedo", "specular", "gloss", "ir", "material")),
                        spacing=max(s.spacing for s in sets))


def star_surface(sdf: Callable[[np.ndarray], np.ndarray], spacing_mm: float, r_max: float,
                 theta_range=(-np.pi, np.pi), phi_range=(-np.pi / 2, np.pi / 2)) -> tuple[np.ndarray, np.ndarray]:
    """Points and normals of a surface star-shaped around the origin, given as a signed
    distance-like function (< 0 inside). Directions are spaced about ``spacing_mm`` apart at
    radius ``r_max`` (denser nearer the centre)."""
    step = spacing_mm / r_max
    th = np.arange(theta_range[0], theta_range[1], step)
    ph = np.arange(phi_range[0], phi_range[1] + 1e-9, step)
    T, P = np.meshgrid(th, ph)
    d = np.stack([np.cos(P) * np.sin(T), np.sin(P), np.cos(P) * np.cos(T)], axis=-1)
    lo = np.zeros(T.shape)
    hi = np.full(T.shape, r_max * 1.5)
    for _ in range(16):
        mid = 0.5 * (lo + hi)
        inside = sdf(d * mid[..., None]) < 0
        lo = np.where(inside, mid, lo)
        hi = np.where(inside, hi, mid)
    pts = d * (0.5 * (lo + hi))[..., None]
    # normals from the sdf's gradient
    e = 0.3
    p = pts.reshape(-1, 3)
    grad = np.stack([sdf(p + [e, 0, 0]) - sdf(p - [e, 0, 0]), sdf(p + [0, e, 0]) - sdf(p - [0, e, 0]),
                     sdf(p + [0, 0, e]) - sdf(p - [0, 0, e])], axis=1)
    return p, normalize(grad)


def superellipsoid(p: np.ndarray, centre: tuple, axes: tuple, n: float, taper: float = 0.0) -> np.ndarray:
    """Signed distance-like value (mm, < 0 inside) of points p (.., 3) to a superellipsoid with
    semi-axes ``axes`` and exponent ``n``; ``taper`` narrows it in x towards -y."""
    x = p[..., 0] - centre[0]
    y = p[..., 1] - centre[1]
    z = p[..., 2] - centre[2]
    if taper:
        x = x / (1.0 + taper * np.clip(y / axes[1], -1.0, 1.0))
    s = (np.abs(x / axes[0]) ** n + np.abs(y / axes[1]) ** n + np.abs(z / axes[2]) ** n) ** (1.0 / n)
    return (s - 1.0) * (sum(axes) / 3.0)


def superellipsoid_sdf(axes, n: float = 2.0, centre=(0.0, 0.0, 0.0)) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`superellipsoid` as a function of the points alone."""
    a = tuple(float(v) for v in axes)
    c = tuple(float(v) for v in centre)
    return lambda p: superellipsoid(p, c, a, n)


def smooth_min(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """The minimum of two distances with the corner rounded over about ``k`` mm (log-sum-exp)."""
    m = np.minimum(a, b)
    return m - k * np.log1p(np.exp(-np.abs(a - b) / k))


def smooth_max(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """The maximum of two distances with the corner rounded (an intersection's :func:`smooth_min`)."""
    return -smooth_min(-a, -b, k)


def capsule_sdf(a, b, radius: float) -> Callable[[np.ndarray], np.ndarray]:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    ab = b - a

    def f(p: np.ndarray) -> np.ndarray:
        t = np.clip(((p - a) @ ab) / (ab @ ab), 0, 1)
        return np.linalg.norm(p - a - t[..., None] * ab, axis=-1) - radius

    return f


def sdf_points(sdf, centre, spacing_mm: float, r_max: float, **kw) -> tuple[np.ndarray, np.ndarray]:
    """:func:`star_surface` around ``centre`` (which must lie inside the shape), thinned to
    about one point per ``spacing_mm`` cube (direction sampling oversamples small and flat
    parts)."""
    c = np.asarray(centre, np.float64)
    p, n = star_surface(lambda q: sdf(q + c), spacing_mm * 0.9, r_max, **kw)
    return thin(p + c, n, spacing_mm)


def thin(p: np.ndarray, n: np.ndarray, spacing_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Keep one point per ``spacing_mm`` voxel (deterministic: the first in array order)."""
    q = np.floor(p / spacing_mm).astype(np.int64)
    q -= q.min(0)
    key = (q[:, 0] * (q[:, 1].max() + 1) + q[:, 1]) * (q[:, 2].max() + 1) + q[:, 2]
    _, first = np.unique(key, return_index=True)
    first.sort()
    return p[first], n[first]


def _union_of_parts(parts: list[tuple[Callable, tuple, float]], spacing: float) -> tuple[np.ndarray, np.ndarray]:
    """Points on the union of star-shaped parts: each part's own surface, minus what lies
    inside another part."""
    pts_all, nrm_all = [], []
    for k, (sdf, centre, r) in enumerate(parts):
        p, n = sdf_points(sdf, centre, spacing, r)
        others = [f for j, (f, _, _) in enumerate(parts) if j != k]
        if others:
            inside = np.min(np.stack([f(p) for f in others]), axis=0) < -0.3
            p, n = p[~inside], n[~inside]
        pts_all.append(p)
        nrm_all.append(n)
    return np.concatenate(pts_all), np.concatenate(nrm_all)


_CACHE: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _hand_geometry(spacing: float) -> tuple[np.ndarray, np.ndarray]:
    key = f"hand{spacing}"
    if key not in _CACHE:
        parts = [(superellipsoid_sdf((42, 48, 14), 2.4), (0, 0, 0), 50.0)]
        for x, length in [(-27, 70), (-9, 80), (9, 76), (26, 62)]:
            a, b = (x, -40, 0), (x * 1.15, -(40 + length), -6)
            parts.append((capsule_sdf(a, b, 8.5), tuple((np.add(a, b) / 2).tolist()), 0.5 * length + 10))
        parts.append((capsule_sdf((40, 10, -4), (70, -30, -14), 10), (55, -10, -9), 38.0))
        parts.append((capsule_sdf((0, 40, 0), (0, 110, 4), 26), (0, 75, 2), 60.0))
        _CACHE[key] = _union_of_parts(parts, spacing)
    return _CACHE[key]


def hand(skin: np.ndarray, spacing: float = 1.8, scale: float = 1.0) -> PointSet:
    """A relaxed open hand, palm towards -z (the camera) in its frame, fingers up (-y), the
    wrist and forearm below (+y). The origin is the centre of the palm."""
    p, n = _hand_geometry(spacing)
    p = p * scale
    tone = np.asarray(skin)[None, :] * (1.0 + 0.06 * np.sin(p[:, 1:2] * 0.3) * np.sin(p[:, 0:1] * 0.2))
    return PointSet.make(p, n, tone, 0.06, 14.0, 0.55, 9, spacing * scale)


def bottle(colour: np.ndarray, spacing: float = 1.6) -> PointSet:
    """A 0.5 l plastic bottle, axis along -y (cap up), origin at its centre."""
    if "bottle" not in _CACHE:
        body = superellipsoid_sdf((33, 95, 33), 6.0)
        neck = capsule_sdf((0, -95, 0), (0, -125, 0), 14.0)
        _CACHE["bottle"] = _union_of_parts([(body, (0, 0, 0), 100.0), (neck, (0, -112, 0), 25.0)], spacing)
    p, n = _CACHE["bottle"]
    alb = np.tile(colour, (len(p), 1))
    label = (p[:, 1] > -40) & (p[:, 1] < 30)
    alb[label] = alb[label] * 0.3 + np.array([0.6, 0.6, 0.55]) * 0.7
    alb[p[:, 1] < -112] = [0.05, 0.2, 0.6]
    return PointSet.make(p, n, alb, 0.35, 50.0, 0.35, 9, spacing)


def phone(spacing: float = 1.4) -> PointSet:
    """A smartphone, screen towards -z, long axis along y, origin at its centre."""
    if "phone" not in _CACHE:
        _CACHE["phone"] = sdf_points(superellipsoid_sdf((36, 75, 4.5), 8.0), (0, 0, 0), spacing, 80)
    p, n = _CACHE["phone"]
    alb = np.tile([0.02, 0.02, 0.025], (len(p), 1))
    back = n[:, 2] > 0.5
    alb[back] = [0.25, 0.25, 0.27]
    return PointSet.make(p, n, alb, 0.6, 80.0, 0.2, 9, spacing)
