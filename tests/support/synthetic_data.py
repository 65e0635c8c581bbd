"""Tiny synthetic crop datasets for the training, export and evaluation tests.

Each crop is a lit ellipsoidal "head" with a "nose" bump on a plain background: the clean depth
is the 8-bit encoded surface (0 = background), the colour is its Lambertian shading under a
fixed light times a random albedo, so the depth can really be learned from the shading and the
silhouette. Sensor depth is the clean depth with noise and random holes.
"""
from __future__ import annotations

import numpy as np

from models.data.dataset import CropDataset
from sensors.encoding import encode_depth


def make_crops(n: int = 48, size: int = 100, subjects: int = 6, seed: int = 0, clean: bool = True,
               splits: tuple[int, ...] = (0, 0, 0, 0, 1, 2)) -> CropDataset:
    """``n`` crops of ``subjects`` identities; subject k gets split ``splits[k % len(splits)]``."""
    rng = np.random.default_rng(seed)
    half_range_mm = 150.0
    v, u = np.mgrid[0:size, 0:size].astype(np.float32)
    color = np.empty((n, size, size, 3), np.uint8)
    depth_clean = np.empty((n, size, size), np.uint8)
    depth = np.empty((n, size, size), np.uint8)
    distance = rng.uniform(700, 1300, n).astype(np.float32)
    subject = (np.arange(n) % subjects).astype(np.int32)
    yaw = rng.uniform(-70, 70, n).astype(np.float32)
    light = np.array([0.3, -0.4, -0.87], np.float32)
    light /= np.linalg.norm(light)
    for i in range(n):
        cx = size / 2 + rng.uniform(-8, 8) + yaw[i] / 10
        cy = size / 2 + rng.uniform(-6, 6)
        ax, ay = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.36, 0.44)
        depth_amp = rng.uniform(70, 100)  # mm from the rim to the front of the ellipsoid
        x, y = (u - cx) / ax, (v - cy) / ay
        r2 = x ** 2 + y ** 2
        inside = r2 < 1
        h = np.sqrt(np.clip(1 - r2, 0, 1)) * depth_amp
        nose = 25 * np.exp(-(((u - cx) / (0.12 * ax)) ** 2 + ((v - cy - 0.1 * ay) / (0.25 * ay)) ** 2))
        height = np.where(inside, h + nose, 0.0)
        z = distance[i] + 60.0 - height  # the rim lies 60 mm behind the head centre plane
        depth_mm = np.where(inside, z, 0.0)
        depth_clean[i] = encode_depth(depth_mm, float(distance[i]), half_range_mm)
        gy, gx = np.gradient(height)
        normal = np.stack([-gx, -gy, -np.full_like(gx, 2.4)], -1)  # surface normal towards the camera (2.4 mm per px)
        normal /= np.linalg.norm(normal, axis=-1, keepdims=True)
        shade = np.clip(normal @ light, 0.05, 1)
        albedo = rng.uniform(120, 230, 3)
        bg = rng.uniform(20, 90, 3)
        img = np.where(inside[..., None], shade[..., None] * albedo, bg)
        color[i] = np.clip(img + rng.normal(0, 2, img.shape), 0, 255).astype(np.uint8)
        noisy = depth_mm + rng.normal(0, 2.0, depth_mm.shape) * inside
        noisy[rng.random(depth_mm.shape) < 0.05] = 0
        depth[i] = encode_depth(noisy, float(distance[i]), half_range_mm)
    split = np.array([splits[s % len(splits)] for s in subject], np.uint8)
    pose = np.stack([yaw, np.zeros(n), np.zeros(n)], -1).astype(np.float32)
    meta = {"crop": {"size_px": size, "window_x_mm": 240.0, "window_y_mm": 240.0, "half_range_mm": half_range_mm},
            "sources": ["virtual:"], "command": "tests/support/synthetic_data.py"}
    return CropDataset(color=color, depth=depth, distance_mm=distance, subject=subject, frame=np.arange(n, dtype=np.int64),
                       pose_deg=pose, split=split, depth_clean=depth_clean if clean else None, meta=meta)
