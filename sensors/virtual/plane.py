"""``virtual:scene=plane`` - an exact test scene: one textured square plane.

The plane (side ``plane_mm``) is centred on the colour camera's optical axis at colour-camera
distance ``distance`` (metres; the low end of a range is used), facing that camera
(``plane_tilt`` turns it about its vertical axis, in degrees). Each camera's pixels are
intersected with it analytically, so depth and colour are exact. Its texture is a checker
of 25 mm squares, light grey and near-black (also in infrared, so with ``noise=on`` the dark
squares lose readings as dark materials do). Nothing else is in the scene: depth is 0 off the
plane and the colour background is a flat dark grey.

Ground truth: ``head_center_mm`` is the plane's centre and ``head_rotation`` its axes (x along
the rows, y along the columns, z its normal away from the camera), both in depth-camera
coordinates; ``subject_id`` is None.
"""
from __future__ import annotations

import numpy as np

from sensors.frame import Frame
from sensors.geometry import rot_y
from sensors.virtual._util import rng
from sensors.virtual.cameras import COLOR_CAMERA, DEPTH_CAMERA, DEPTH_TO_COLOR, MAX_RANGE_MM, MIN_RANGE_MM
from sensors.virtual.scene import camera_rays
from sensors.virtual.sensor import apply_depth_sensor, colour_effects, hole_probability, ir_signal, noise_sigma_mm

BACKGROUND_RGB = 50
SQUARE_MM = 25.0
LIGHT, DARK = 0.75, 0.02


class PlaneScene:
    def __init__(self, options) -> None:
        self.o = options
        self.distance_mm = 1000.0 * options.distance_m[0]
        self.half = 0.5 * options.plane_mm
        r_tilt = rot_y(np.radians(options.plane_tilt_deg))
        self.centre_c = np.array([0.0, 0.0, self.distance_mm])
        self.axes_c = r_tilt  # columns: plane x, y, normal (colour camera)
        rt = DEPTH_TO_COLOR.rotation.T
        self.centre_d = rt @ (self.centre_c - DEPTH_TO_COLOR.translation_mm)
        self.axes_d = rt @ self.axes_c
        self._rays_d = camera_rays(DEPTH_CAMERA, DEPTH_CAMERA.width, DEPTH_CAMERA.height)
        self._clean, self._ir, self._cos = self._depth()

    def _intersect(self, rays: np.ndarray, origin: np.ndarray, centre: np.ndarray, axes: np.ndarray):
        n = axes[:, 2]
        denom = rays @ n
        t = ((centre - origin) @ n) / np.where(np.abs(denom) < 1e-12, 1e-12, denom)
        p = origin + rays * t[..., None]
        a = (p - centre) @ axes[:, 0]
        b = (p - centre) @ axes[:, 1]
        inside = (np.abs(a) <= self.half) & (np.abs(b) <= self.half) & (t > 0)
        return t, a, b, inside

    @staticmethod
    def _checker(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ka = np.floor(a / SQUARE_MM).astype(np.int64)
        kb = np.floor(b / SQUARE_MM).astype(np.int64)
        return np.where((ka + kb) % 2 == 0, LIGHT, DARK)

    def _depth(self):
        t, a, b, inside = self._intersect(self._rays_d, np.zeros(3), self.centre_d, self.axes_d)
        z = np.where(inside, t, 0.0)  # rays have unit z: t is the depth
        z = np.where((z >= MIN_RANGE_MM) & (z <= MAX_RANGE_MM), z, 0.0)
        ir = np.where(inside, self._checker(a, b), 0.0)
        cos = np.abs(self._rays_d / np.linalg.norm(self._rays_d, axis=-1, keepdims=True) @ self.axes_d[:, 2])
        return z.astype(np.float32), ir, cos

    def _color(self, g: np.random.Generator) -> np.ndarray:
        cam = COLOR_CAMERA
        img = np.full((cam.height, cam.width, 3), BACKGROUND_RGB, np.uint8)
        corners = np.array([[sa * self.half, sb * self.half, 0.0] for sa in (-1, 1) for sb in (-1, 1)])
        pc = corners @ self.axes_c.T + self.centre_c
        if (pc[:, 2] <= 0).any():
            return img
        uv = cam.project(pc)
        x0 = int(max(np.floor(uv[:, 0].min()) - 2, 0))
        x1 = int(min(np.ceil(uv[:, 0].max()) + 3, cam.width))
        y0 = int(max(np.floor(uv[:, 1].min()) - 2, 0))
        y1 = int(min(np.ceil(uv[:, 1].max()) + 3, cam.height))
        if x1 <= x0 or y1 <= y0:
            return img
        u, v = np.meshgrid(np.arange(x0, x1, dtype=np.float64), np.arange(y0, y1, dtype=np.float64))
        rays = cam.ray(u, v)
        _, a, b, inside = self._intersect(rays, np.zeros(3), self.centre_c, self.axes_c)
        val = self._checker(a, b)
        srgb = np.where(val > 0.5, 220, 25)
        # a little colour so the channels are not identical: red along +x, blue along +y
        rgb = np.stack([srgb + 20 * (a > 0), srgb.astype(np.float64), srgb + 20 * (b > 0)], -1)
        region = img[y0:y1, x0:x1]
        region[inside] = np.clip(rgb[inside], 0, 255).astype(np.uint8)
        if self.o.noise:
            img[y0:y1, x0:x1] = colour_effects(region, 0.8, 1, 90, g, noise=True)
        return img

    def render(self, index: int, stamp_ns: int, source: str) -> Frame:
        g = rng("plane-frame", self.o.seed, index)
        clean = self._clean
        clean16 = np.rint(clean).astype(np.uint16)
        if self.o.noise:
            sig = ir_signal(self._ir, self._cos, np.maximum(clean, 1.0))
            depth = apply_depth_sensor(clean, noise_sigma_mm(sig, clean), hole_probability(sig, self._cos), g)
        else:
            depth = clean16.copy()
        return Frame(
            index=int(index), timestamp_ns=int(stamp_ns), color=self._color(g), color_camera=COLOR_CAMERA,
            depth_mm=depth, depth_camera=DEPTH_CAMERA, depth_to_color=DEPTH_TO_COLOR,
            head_center_mm=self.centre_d.copy(), head_rotation=self.axes_d.copy(), subject_id=None,
            depth_clean_mm=clean16, source=source,
        )
