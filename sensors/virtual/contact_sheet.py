"""The virtual people at a glance (``launch.py contact-sheet``).

Sixteen identities, each in four poses and expressions, as colour and depth face windows
(a 260 mm square around the head centre; depth shown over +-150 mm around it, near = bright,
no reading = black), with their depth-sensor noise and holes.
"""
from __future__ import annotations

#: (yaw, pitch, roll, jaw, smile, blink) of the four columns
POSES = (
    (0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    (35.0, -10.0, 5.0, 0.0, 0.8, 0.0),
    (-65.0, 10.0, -8.0, 0.5, 0.0, 0.0),
    (10.0, 25.0, 15.0, 0.9, 0.2, 1.0),
)
WINDOW_MM = 260.0


def _window(image, cam, centre_mm, size_px: int):
    """The WINDOW_MM square around ``centre_mm`` (that camera's coordinates), resized to a tile."""
    import cv2

    u, v = cam.project(centre_mm[None])[0]
    half = int(round(cam.fx * WINDOW_MM / 2.0 / centre_mm[2]))
    x0, y0 = int(round(u)) - half, int(round(v)) - half
    pad = 2 * half + 2
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=0)
    crop = padded[y0 + pad:y0 + pad + 2 * half, x0 + pad:x0 + pad + 2 * half]
    interp = cv2.INTER_AREA if image.ndim == 3 else cv2.INTER_NEAREST
    return cv2.resize(crop, (size_px, size_px), interpolation=interp)


def render_sheet(seed: int = 0, first_subject: int = 0, tile: int = 120, heads: str = "procedural",
                 face_model: str | None = None):
    """The contact sheet as an RGB uint8 array (16 rows of 4 colour + depth pairs) of the
    ``heads`` kind of people (scan and mixed need the ``face_model`` folder)."""
    import numpy as np

    from sensors.virtual.source import VirtualKinect

    model = f",face_model={face_model}" if face_model else ""
    src = VirtualKinect.from_uri(f"virtual:seed={seed},pace=off,occluders=off,heads={heads}{model}")
    rows = []
    for k in range(16):
        subject = first_subject + k
        tiles = []
        for p, (yaw, pitch, roll, jaw, smile, blink) in enumerate(POSES):
            f = src.render_posed(subject, yaw, pitch, roll, jaw, smile, blink, distance_m=0.75 + 0.05 * (k % 4),
                                 sequence=k)
            colour = _window(f.color, f.color_camera, f.head_center_color_mm(), tile)
            d = f.depth_mm.astype(np.float32)
            zc = f.head_center_mm[2]
            d8 = np.where(d > 0, np.clip(255.0 - (d - (zc - 150.0)) * (254.0 / 300.0), 1, 255), 0).astype(np.uint8)
            d8 = _window(d8, f.depth_camera, f.head_center_mm, tile)
            tiles += [colour, np.repeat(d8[..., None], 3, axis=2)]
        rows.append(np.concatenate(tiles, axis=1))
        src._heads.clear()
    # two people per line keeps the sheet roughly square
    half = len(rows) // 2
    left = np.concatenate(rows[:half], axis=0)
    right = np.concatenate(rows[half:], axis=0)
    gap = np.full((left.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([left, gap, right], axis=1)
