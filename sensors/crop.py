"""The dynamic face crop: one implementation for training, evaluation and the live app.

A crop is a window of ``window_x_mm`` x ``window_y_mm`` (R_x x R_y) at the head centre's
distance D, centred on the head centre projected into the colour image, resampled to
``size_px`` x ``size_px`` (S x S). In colour-image pixels the window is

    w = f_x R_x / D        h = f_y R_y / D

with f_x, f_y the colour camera's focal lengths. D is the head centre's z in colour-camera
coordinates (mm) and the depth crop holds colour-camera z values.

Window geometry, in the project's pixel convention (the centre of the top-left pixel at
(0, 0), so pixel k covers [k - 0.5, k + 0.5]): ``x0 = u_c - w / 2``, ``y0 = v_c - h / 2`` is
the window's top-left corner, and crop pixel (i, j) covers colour-image coordinates
``[x0 + j w/S, x0 + (j+1) w/S] x [y0 + i h/S, y0 + (i+1) h/S]``. A colour-image point (u, v)
therefore lands at crop coordinates ``((u - x0) S / w - 0.5, (v - y0) S / h - 0.5)``; the head
centre lands at ((S - 1) / 2, (S - 1) / 2).

Colour: area-filtered resampling (an exact block average of the image under the window, then
bilinear resampling at the crop's pixel centres). Depth: only the depth pixels whose rays can
reach the window are registered (a rectangle of the depth image found from the window's
frustum, so the cost does not depend on the frame size); each becomes a 3D point, moves to
colour-camera coordinates (``Frame.depth_to_color``), and is splatted straight into the S x S
grid as a rectangle the size of its depth pixel at that distance (plus a small overlap),
through a z-buffer: the nearest surface wins, a flat surface leaves no holes even where the
depth camera has fewer pixels across the window than the crop, and values are never
interpolated, so every depth value in a crop is a real measurement (in colour-camera z) or 0.
The face mask of a virtual frame (``Frame.face_mask``) rides along in the same splat of the
clean depth: a crop pixel is in the crop's face mask when its winning depth sample is a face
pixel (a tie in z goes to the non-face sample), so the mask's pixels always have clean depth.

Windows reaching past the image are padded, never shifted or shrunk: colour with neutral grey
(:data:`PAD_GRAY`), depth with 0.

The window size R: the default 240 mm x 240 mm holds an adult head (about 150-160 mm wide and
220-240 mm from chin to crown) with its centre in the middle, so the whole face, the hair line
and the ears fit with a small margin at moderate yaw; it is configurable and is stored with
every dataset and model (``CropConfig.to_dict``). Lens distortion: the depth camera's
distortion coefficients are honoured (its rays are undistorted); the colour image is treated
as a pinhole image (distortion-free, as Kinect v2 colour and the datasets' colour images are
delivered).
"""
from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass, fields

import cv2
import numpy as np

from sensors.encoding import encode_depth
from sensors.errors import ConfigError, SensorError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics

#: the neutral value that pads colour where the window reaches past the image
PAD_GRAY = 128
#: extra size of each depth splat beyond its depth pixel's footprint (fraction). It closes the
#: gaps that rounding, perspective and the cameras' baseline open between neighbouring points
#: (sensor noise moves neighbours by different parallax); the edges of nearer surfaces and of
#: holes move by half of it (0.15 of a depth pixel)
SPLAT_OVERLAP = 0.3
#: nearest colour-camera z registered at all (mm), whatever D is
MIN_Z_MM = 50.0


@dataclass(frozen=True)
class CropConfig:
    """The crop's geometry; stored with every dataset and model.

    ``size_px`` S (crop side), ``window_x_mm`` / ``window_y_mm`` R_x / R_y (window size at the
    head centre's distance), ``half_range_mm`` H of the 8-bit encoding (z in [D - H, D + H]),
    ``depth_margin_mm``: depth points whose colour-camera z lies outside D +- this margin are
    not registered (0 in ``FaceCrop.depth_mm``); it is at least H, so it never changes an 8-bit
    crop.
    """

    size_px: int = 100
    window_x_mm: float = 240.0
    window_y_mm: float = 240.0
    half_range_mm: float = 150.0
    depth_margin_mm: float = 500.0

    def __post_init__(self) -> None:
        if not isinstance(self.size_px, (int, np.integer)) or isinstance(self.size_px, bool) or not 8 <= self.size_px <= 4096:
            raise ConfigError(f"crop size must be an integer number of pixels in 8..4096, got {self.size_px!r}")
        for name in ("window_x_mm", "window_y_mm", "half_range_mm", "depth_margin_mm"):
            v = getattr(self, name)
            if not isinstance(v, (int, float, np.floating, np.integer)) or not (math.isfinite(v) and v > 0):
                raise ConfigError(f"crop {name} must be a positive number of mm, got {v!r}")
        if self.depth_margin_mm < self.half_range_mm:
            raise ConfigError(
                f"crop depth_margin_mm ({self.depth_margin_mm:g}) must be at least half_range_mm "
                f"({self.half_range_mm:g})"
            )
        object.__setattr__(self, "size_px", int(self.size_px))
        for name in ("window_x_mm", "window_y_mm", "half_range_mm", "depth_margin_mm"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def to_dict(self) -> dict:
        return asdict(self)

    def same_pixels(self, other: "CropConfig") -> bool:
        """Whether crops of both configs mean the same thing pixel for pixel: same size, window
        and depth range (``depth_margin_mm`` never changes an 8-bit crop)."""
        return (self.size_px, self.window_x_mm, self.window_y_mm, self.half_range_mm) == (
            other.size_px, other.window_x_mm, other.window_y_mm, other.half_range_mm)

    @classmethod
    def from_dict(cls, d: dict) -> "CropConfig":
        """From ``to_dict`` output; missing keys take their defaults, unknown keys are an error."""
        if not isinstance(d, dict):
            raise ConfigError(f"crop config must be a mapping, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"unknown crop config key(s) {', '.join(unknown)}; expected {', '.join(sorted(known))}")
        try:
            kw = {k: (int(v) if k == "size_px" else float(v)) for k, v in d.items()}
        except (TypeError, ValueError):
            raise ConfigError(f"crop config values must be numbers, got {d!r}") from None
        return cls(**kw)


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """One S x S face crop of a frame.

    ``color`` (S, S, 3) uint8 RGB; ``depth_mm`` (S, S) float32 colour-camera z in mm, 0 = no
    reading (None for colour-only frames); ``depth_clean_mm`` the same from the frame's
    noise-free depth (None when the frame has none); ``distance_mm`` D; ``center_px`` the head
    centre projected into the colour image; ``window_px`` (x0, y0, w, h): the window's
    top-left corner and size in colour-image pixels (see the module docstring for the exact
    convention); ``config`` the crop geometry; ``color_camera`` the intrinsics of the image it
    was cut from; ``face_mask`` (S, S) bool: the crop pixels whose winning depth sample (of
    ``depth_clean_mm``, else of ``depth_mm`` when the frame has no clean depth) is a pixel of
    the frame's ``face_mask`` (None when the frame has none).
    """

    color: np.ndarray
    depth_mm: np.ndarray | None
    depth_clean_mm: np.ndarray | None
    distance_mm: float
    center_px: tuple[float, float]
    window_px: tuple[float, float, float, float]
    config: CropConfig
    color_camera: CameraIntrinsics | None = None
    face_mask: np.ndarray | None = None

    def depth8(self) -> np.ndarray | None:
        """The sensor depth crop in the 8-bit encoding around D (None without depth)."""
        if self.depth_mm is None:
            return None
        return encode_depth(self.depth_mm, self.distance_mm, self.config.half_range_mm)

    def depth_clean8(self) -> np.ndarray | None:
        """The noise-free depth crop in the 8-bit encoding around D (None when unknown)."""
        if self.depth_clean_mm is None:
            return None
        return encode_depth(self.depth_clean_mm, self.distance_mm, self.config.half_range_mm)

    def to_crop_px(self, points_color_mm: np.ndarray) -> np.ndarray:
        """Project Nx3 colour-camera points to Nx2 crop coordinates (x right, y down, pixel centres)."""
        if self.color_camera is None:
            raise SensorError("this crop does not know its colour camera")
        uv = self.color_camera.project(np.asarray(points_color_mm, dtype=np.float64).reshape(-1, 3))
        return window_to_crop(uv, self.window_px, self.config.size_px)


def window_px_for(center_color_mm: np.ndarray, camera: CameraIntrinsics,
                  config: CropConfig) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """The projected head centre and the window (x0, y0, w, h) in colour-image pixels."""
    c = np.asarray(center_color_mm, dtype=np.float64).reshape(-1)
    if c.shape != (3,) or not np.all(np.isfinite(c)):
        raise SensorError(f"head centre must be 3 finite numbers (mm), got {center_color_mm!r}")
    d = float(c[2])
    if d < MIN_Z_MM:
        raise SensorError(f"head centre z = {d:.1f} mm is not in front of the colour camera")
    u, v = camera.project_xyz(c[0], c[1], d)
    w = camera.fx * config.window_x_mm / d
    h = camera.fy * config.window_y_mm / d
    return (float(u), float(v)), (float(u - w / 2), float(v - h / 2), float(w), float(h))


def window_to_crop(uv: np.ndarray, window_px: tuple[float, float, float, float], size_px: int) -> np.ndarray:
    """Colour-image pixel coordinates (Nx2) to crop coordinates (Nx2, pixel centres at integers)."""
    x0, y0, w, h = window_px
    uv = np.asarray(uv, dtype=np.float64)
    return np.stack([(uv[..., 0] - x0) * size_px / w - 0.5, (uv[..., 1] - y0) * size_px / h - 0.5], axis=-1)


def crop_to_window(xy: np.ndarray, window_px: tuple[float, float, float, float], size_px: int) -> np.ndarray:
    """Crop coordinates (Nx2, pixel centres at integers) to colour-image pixel coordinates: the
    inverse of :func:`window_to_crop`."""
    x0, y0, w, h = window_px
    xy = np.asarray(xy, dtype=np.float64)
    return np.stack([x0 + (xy[..., 0] + 0.5) * w / size_px, y0 + (xy[..., 1] + 0.5) * h / size_px], axis=-1)


def crop_points(crop: FaceCrop, depth_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A depth crop (S x S colour-camera z in mm, 0 = none: the crop's own ``depth_mm`` or a
    decoded prediction) as a coloured point cloud: (N, 3) float32 colour-camera points in mm,
    one per crop pixel with depth, each on its pixel centre's ray, and their (N, 3) uint8 RGB
    from the colour crop."""
    if crop.color_camera is None:
        raise SensorError("this crop does not know its colour camera")
    z = np.asarray(depth_mm, dtype=np.float64)
    s = crop.config.size_px
    if z.shape != (s, s):
        raise SensorError(f"depth crop is {z.shape}, expected ({s}, {s})")
    rows, cols = np.nonzero(z > 0)
    uv = crop_to_window(np.stack([cols, rows], axis=-1), crop.window_px, s)
    points = crop.color_camera.unproject(uv[:, 0], uv[:, 1], z[rows, cols])
    return points.astype(np.float32), np.ascontiguousarray(crop.color[rows, cols], dtype=np.uint8)


def crop_face(frame: Frame, head_center_color_mm: np.ndarray, config: CropConfig = CropConfig()) -> FaceCrop:
    """Cut the face window around ``head_center_color_mm`` (colour-camera mm) out of ``frame``."""
    center_px, window = window_px_for(head_center_color_mm, frame.color_camera, config)
    d = float(np.asarray(head_center_color_mm, dtype=np.float64).reshape(3)[2])
    s = config.size_px
    color = _crop_color(frame.color, window, s)
    depth = clean = face = None
    if frame.depth_mm is not None and frame.depth_camera is not None:
        reg = _Registration(frame, window, s, d, config.depth_margin_mm)
        fm = frame.face_mask
        if fm is not None and frame.depth_clean_mm is None:  # the mask rides on the sensor depth
            depth, face = reg.splat_labelled(frame.depth_mm, fm)
        else:
            depth = reg.splat(frame.depth_mm)
        if frame.depth_clean_mm is not None:
            if fm is not None:
                clean, face = reg.splat_labelled(frame.depth_clean_mm, fm)
            else:
                clean = reg.splat(frame.depth_clean_mm)
    return FaceCrop(color, depth, clean, d, center_px, window, config, frame.color_camera, face)


def register_depth(frame: Frame, window_px: tuple[float, float, float, float], size_px: tuple[int, int] | int,
                   distance_mm: float, margin_mm: float, clean: bool = False) -> np.ndarray:
    """The frame's depth registered onto a grid over a colour-image window (the crop's registration).

    ``window_px`` (x0, y0, w, h) in colour-image pixels, sampled on ``size_px`` (S, or (columns,
    rows)) cells; only depth points whose colour-camera z lies within ``distance_mm`` +-
    ``margin_mm`` are registered. Returns float32 colour-camera z in mm, 0 = no reading; zeros
    when the frame has no depth. ``clean=True`` registers ``depth_clean_mm`` instead.
    """
    nx, ny = (size_px, size_px) if isinstance(size_px, (int, np.integer)) else size_px
    depth = frame.depth_clean_mm if clean else frame.depth_mm
    if depth is None or frame.depth_camera is None:
        return np.zeros((ny, nx), np.float32)
    return _Registration(frame, window_px, (int(nx), int(ny)), float(distance_mm), float(margin_mm)).splat(depth)


def _crop_color(image: np.ndarray, window: tuple[float, float, float, float], s: int) -> np.ndarray:
    """Area-filtered S x S resampling of the window; grey where the window leaves the image.

    Two exact stages: an m x m block average of the image region under the window (m = the
    window's pixels per crop pixel, rounded), then bilinear resampling of that reduced image at
    the crop's pixel centres, so the geometry is exact to the sub-pixel and the colour is
    filtered over about one crop pixel. Crop pixels whose centre lies outside the image are
    :data:`PAD_GRAY`.
    """
    x0, y0, w, h = window
    height, width = image.shape[:2]
    out = np.full((s, s, 3), PAD_GRAY, dtype=np.uint8)
    mx, my = max(1, round(w / s)), max(1, round(h / s))
    ax = max(0, math.floor(x0) - mx)
    ay = max(0, math.floor(y0) - my)
    nx = (min(width, math.ceil(x0 + w) + mx + 1) - ax) // mx
    ny = (min(height, math.ceil(y0 + h) + my + 1) - ay) // my
    if nx < 1 or ny < 1:
        return out
    roi = image[ay:ay + ny * my, ax:ax + nx * mx]
    small = roi if mx == my == 1 else cv2.resize(roi, (nx, ny), interpolation=cv2.INTER_AREA)
    # crop pixel j's centre is at u = x0 + (j + 0.5) w / s; reduced pixel q's at ax + (mx - 1) / 2 + mx q
    stepx, stepy = w / s, h / s
    m = np.array([
        [stepx / mx, 0.0, (x0 + 0.5 * stepx - ax - (mx - 1) / 2) / mx],
        [0.0, stepy / my, (y0 + 0.5 * stepy - ay - (my - 1) / 2) / my],
    ])
    warped = cv2.warpAffine(
        small, m, (s, s), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
    )
    # crop pixels whose centre falls inside the image (within its outer pixel edges)
    j_lo = min(s, max(0, math.ceil((-0.5 - x0) / stepx - 0.5)))
    j_hi = min(s, max(0, math.floor((width - 0.5 - x0) / stepx - 0.5) + 1))
    i_lo = min(s, max(0, math.ceil((-0.5 - y0) / stepy - 0.5)))
    i_hi = min(s, max(0, math.floor((height - 0.5 - y0) / stepy - 0.5) + 1))
    out[i_lo:i_hi, j_lo:j_hi] = warped[i_lo:i_hi, j_lo:j_hi]
    return out


@functools.lru_cache(maxsize=8)
def _ray_tables(camera: CameraIntrinsics) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per depth pixel: the undistorted ray (x/z, y/z) and its pixel's size (d(x/z)/du, d(y/z)/dv)."""
    u, v = np.meshgrid(np.arange(camera.width, dtype=np.float64), np.arange(camera.height, dtype=np.float64))
    rays = camera.ray_distorted(u, v)
    rx, ry = rays[..., 0], rays[..., 1]
    sx = np.abs(np.gradient(rx, axis=1)) if camera.width > 1 else np.full_like(rx, 1.0 / camera.fx)
    sy = np.abs(np.gradient(ry, axis=0)) if camera.height > 1 else np.full_like(ry, 1.0 / camera.fy)
    tables = tuple(a.astype(np.float32) for a in (rx, ry, sx, sy))
    for a in tables:
        a.setflags(write=False)
    return tables  # type: ignore[return-value]


class _Registration:
    """Depth-to-crop registration for one window: which depth pixels, and where they land."""

    def __init__(self, frame: Frame, window: tuple[float, float, float, float], s: int | tuple[int, int],
                 distance_mm: float, margin_mm: float) -> None:
        dcam, ccam = frame.depth_camera, frame.color_camera
        assert dcam is not None
        x0, y0, w, h = window
        sx_, sy_ = (s, s) if isinstance(s, int) else s
        self.nx, self.ny = sx_, sy_
        self.z_lo = max(MIN_Z_MM, distance_mm - margin_mm)
        self.z_hi = distance_mm + margin_mm
        ext = frame.depth_to_color
        self.rot = ext.rotation.astype(np.float32)
        self.trans = ext.translation_mm.astype(np.float32)
        # crop x = ax * (x_c / z_c) + bx, crop y = ay * (y_c / z_c) + by
        self.ax, self.ay = ccam.fx * sx_ / w, ccam.fy * sy_ / h
        self.bx, self.by = (ccam.cx - x0) * sx_ / w - 0.5, (ccam.cy - y0) * sy_ / h - 0.5
        # the depth-image rectangle the window's frustum (z_lo..z_hi) can map to
        us = np.array([x0, x0 + w / 2, x0 + w, x0, x0 + w, x0, x0 + w / 2, x0 + w])
        vs = np.array([y0, y0, y0, y0 + h / 2, y0 + h / 2, y0 + h, y0 + h, y0 + h])
        corners = np.concatenate([ccam.unproject(us, vs, np.full(8, z)) for z in (self.z_lo, self.z_hi)])
        in_depth = ext.inverse().apply(corners)
        self.rect: tuple[slice, slice] | None
        if np.any(in_depth[:, 2] <= MIN_Z_MM / 2):
            u0, v0, u1, v1 = 0, 0, dcam.width, dcam.height  # frustum crosses the depth camera's plane
        else:
            uv = dcam.project_distorted(in_depth)
            pad = 2
            u0 = max(0, int(math.floor(uv[:, 0].min())) - pad)
            v0 = max(0, int(math.floor(uv[:, 1].min())) - pad)
            u1 = min(dcam.width, int(math.ceil(uv[:, 0].max())) + pad + 1)
            v1 = min(dcam.height, int(math.ceil(uv[:, 1].max())) + pad + 1)
        self.rect = (slice(v0, v1), slice(u0, u1)) if u1 > u0 and v1 > v0 else None
        if self.rect is not None:
            rx, ry, sx, sy = _ray_tables(dcam)
            self.rx, self.ry = rx[self.rect], ry[self.rect]
            self.sx_max, self.sy_max = float(sx[self.rect].max()), float(sy[self.rect].max())

    def splat(self, depth_mm: np.ndarray) -> np.ndarray:
        """Register one depth image (uint16 mm, 0 = none) onto the grid: float32 colour z, 0 = none."""
        return self._splat(depth_mm, None)[0]

    def splat_labelled(self, depth_mm: np.ndarray, label: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`splat` (the same z, bit for bit), and per grid cell whether its winning depth
        pixel is True in ``label`` (bool, the depth image's size; False where no depth landed)."""
        z, lab = self._splat(depth_mm, label)
        assert lab is not None
        return z, lab

    def _splat(self, depth_mm: np.ndarray, label: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
        sx_, sy_ = self.nx, self.ny
        out = np.zeros((sy_, sx_), dtype=np.float32)
        lab_out = None if label is None else np.zeros((sy_, sx_), dtype=bool)
        if self.rect is None:
            return out, lab_out
        z = depth_mm[self.rect]
        valid = z > 0
        if not valid.any():
            return out, lab_out
        lab = None if label is None else label[self.rect][valid]
        zd = z[valid].astype(np.float32)
        xd = self.rx[valid] * zd
        yd = self.ry[valid] * zd
        r, t = self.rot, self.trans
        zc = r[2, 0] * xd + r[2, 1] * yd + r[2, 2] * zd + t[2]
        keep = (zc >= self.z_lo) & (zc <= self.z_hi)
        if not keep.all():
            xd, yd, zd, zc = xd[keep], yd[keep], zd[keep], zc[keep]
            lab = None if lab is None else lab[keep]
        if zc.size == 0:
            return out, lab_out
        inv = 1.0 / zc
        px = (r[0, 0] * xd + r[0, 1] * yd + r[0, 2] * zd + t[0]) * inv
        px *= np.float32(self.ax)
        px += np.float32(self.bx)
        py = (r[1, 0] * xd + r[1, 1] * yd + r[1, 2] * zd + t[1]) * inv
        py *= np.float32(self.ay)
        py += np.float32(self.by)
        # half-size of the footprints in crop pixels: the largest depth pixel in the rectangle
        # seen from the colour camera (z_d / z_c corrects for the cameras' offset along z)
        ratio = float((zd * inv).max())
        grow = 0.5 * (1.0 + SPLAT_OVERLAP) * ratio
        hx, hy = grow * self.sx_max * self.ax, grow * self.sy_max * self.ay
        lox = np.ceil(px - hx).astype(np.int32)
        hix = np.floor(px + hx).astype(np.int32)
        loy = np.ceil(py - hy).astype(np.int32)
        hiy = np.floor(py + hy).astype(np.int32)
        near = (hix >= 0) & (lox < sx_) & (hiy >= 0) & (loy < sy_)
        if not near.all():
            lox, hix, loy, hiy, zc = lox[near], hix[near], loy[near], hiy[near], zc[near]
            lab = None if lab is None else lab[near]
        if zc.size == 0:
            return out, lab_out
        np.clip(lox, 0, sx_, out=lox)
        np.clip(loy, 0, sy_, out=loy)
        np.clip(hix, -1, sx_ - 1, out=hix)
        np.clip(hiy, -1, sy_ - 1, out=hiy)
        nx = int(math.floor(2 * hx)) + 1
        ny = int(math.floor(2 * hy)) + 1
        if lab is None:
            key, zbuf = zc, np.full(sx_ * sy_, np.inf, dtype=np.float32)
        else:
            # z and label in one int64 key: positive float32s order as their bit patterns, so the
            # minimum key is the nearest z (exactly the float z-buffer's), a tie going to label 0
            key = (zc.astype(np.float32, copy=False).view(np.int32).astype(np.int64) << 1) | lab.astype(np.int64)
            zbuf = np.full(sx_ * sy_, np.iinfo(np.int64).max, dtype=np.int64)
        for b in range(ny):
            i = loy + b
            row_ok = i <= hiy
            for a in range(nx):
                j = lox + a
                m = row_ok & (j <= hix)
                if m.all():
                    np.minimum.at(zbuf, i * sx_ + j, key)
                elif m.any():
                    np.minimum.at(zbuf, i[m] * sx_ + j[m], key[m])
        if lab is not None:
            empty = zbuf == np.iinfo(np.int64).max
            lab_out = ((zbuf & 1) == 1) & ~empty
            zbuf = (zbuf >> 1).astype(np.int32).view(np.float32)
            zbuf[empty] = np.inf
            lab_out = lab_out.reshape(sy_, sx_)
        zbuf[np.isinf(zbuf)] = 0.0
        return zbuf.reshape(sy_, sx_), lab_out
