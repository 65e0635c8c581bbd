"""The renderer: a sequence's static stage once, then the moving person per frame.

Per sequence (:class:`Stage`): the room is ray cast (colour at a reduced resolution, depth at
full), the seated torso is splatted into both, and the colour camera's blur, noise and JPEG
are baked into the background. Per frame (:meth:`Renderer.render`): the head, neck and any
occluders are posed, culled, shaded per point (diffuse with a soft wrap, Blinn-Phong specular,
a key and a fill light, ambient, and the head's precomputed self-shadowing), splatted into the
depth camera and, at about one pixel per millimetre, into the colour camera, then composited over
the stage with a z-test and passed through the sensor model. Each point carries a face flag
(``HeadModel.face_index``) through the depth splat, so the z-buffer's winners also give the
frame's face mask (``Frame.face_mask``) at no extra splat.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from sensors.geometry import rot_x, rot_y, rot_z
from sensors.virtual._util import matvec, normalize, rng, rowdot, xform
from sensors.virtual.people import HeadModel
from sensors.virtual.cameras import COLOR_CAMERA, DEPTH_CAMERA, DEPTH_TO_COLOR, MAX_RANGE_MM
from sensors.virtual.scene import (
    FrameState,
    Lighting,
    SequencePlan,
    _room_boxes,
    camera_rays,
    cap_points,
    raycast_boxes,
    scarf_points,
    torso_points,
)
from sensors.virtual.sensor import NoiseTables, apply_depth_sensor, colour_effects, hole_probability, ir_signal, noise_sigma_mm
from sensors.virtual.shapes import PointSet, bottle, hand, phone
from sensors.virtual.splat import splat_nearest

_R_DC = DEPTH_TO_COLOR.rotation.astype(np.float32)
_T_DC = DEPTH_TO_COLOR.translation_mm.astype(np.float32)
#: the colour camera's centre in depth-camera coordinates
COLOR_CENTRE_IN_DEPTH = (-DEPTH_TO_COLOR.rotation.T @ DEPTH_TO_COLOR.translation_mm).astype(np.float32)
_HALF = (COLOR_CAMERA.width // 2, COLOR_CAMERA.height // 2)
#: linear RGB of the plain backdrop of ``room=none``
BACKDROP_LINEAR = np.array([0.12, 0.12, 0.12])
#: colour pixels per millimetre on the head (internal rendering resolution)
PX_PER_MM = 0.95

# linear -> sRGB lookup (4096 steps)
_SRGB_LUT = np.clip(
    np.where(np.linspace(0, 1, 4096) <= 0.0031308, 12.92 * np.linspace(0, 1, 4096),
             1.055 * np.linspace(0, 1, 4096) ** (1 / 2.4) - 0.055) * 255.0 + 0.5, 0, 255).astype(np.uint8)


def to_srgb8(linear: np.ndarray) -> np.ndarray:
    idx = np.clip(linear * 4095.0, 0, 4095).astype(np.int32)
    return _SRGB_LUT[idx]


@dataclass
class Stage:
    """The static part of a sequence, as both cameras see it."""

    color: np.ndarray          # 1080 x 1920 x 3 uint8, camera effects applied
    color_z_half: np.ndarray   # 540 x 960 float32, colour-camera z (0 = nothing)
    depth: np.ndarray          # 424 x 512 float32, clean depth (0 = nothing)
    sigma: np.ndarray          # 424 x 512 float32, noise std (mm)
    p_hole: np.ndarray         # 424 x 512 float32
    torso_rotation: np.ndarray
    torso_origin: np.ndarray   # head-rest centre, depth camera
    extras: dict              # sequence-level props: cap, scarf, occluder point sets


def shade(normals: np.ndarray, albedo: np.ndarray, specular: np.ndarray, gloss: np.ndarray, light: Lighting,
          view_dir: np.ndarray, key_vis: np.ndarray | float = 1.0, ao: np.ndarray | float = 0.85) -> np.ndarray:
    """Linear RGB radiance of surface points (normals in the depth camera's frame) towards the
    colour camera, seen along ``view_dir`` (unit vector from the surface towards the camera; one
    per call: a head is small against its distance). A soft wrap of the key light stands in for
    skin's subsurface scattering; the fill light has no shadows; ambient comes more from above."""
    f32 = np.float32
    nl = matvec(normals, light.key_dir)
    n = len(normals)
    terms = np.empty((n, 3), f32)
    np.multiply(np.clip((nl + f32(0.25)) * f32(0.8), 0.0, None), key_vis, out=terms[:, 0])
    np.clip(matvec(normals, light.fill_dir), 0.0, None, out=terms[:, 1])
    np.multiply(f32(0.8) - f32(0.2) * normals[:, 1], ao, out=terms[:, 2])
    colours = np.stack([light.key_colour, light.fill_colour, light.ambient])
    irr = xform(terms, colours.T)
    half = normalize(np.asarray(view_dir, np.float64) + light.key_dir)
    nh = np.clip(matvec(normals, half), 0.0, 1.0)
    spec = specular * nh ** gloss * key_vis * (nl > 0)
    out = albedo * irr
    out += spec[:, None] * np.asarray(light.key_colour, f32)
    return out


def _view_dirs(centre_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors from a point near ``centre_mm`` towards the colour and the depth camera."""
    c = np.asarray(centre_mm, np.float64)
    return normalize(COLOR_CENTRE_IN_DEPTH - c), normalize(-c)


@dataclass
class _Batch:
    """Visible points of one frame, ready to splat."""

    pw: np.ndarray        # depth camera coordinates
    rgb: np.ndarray       # uint8 sRGB
    signal: np.ndarray    # IR signal strength
    cos: np.ndarray       # cosine of incidence at the depth camera
    hair: np.ndarray      # 1 on hair
    spacing: np.ndarray   # mm
    face: np.ndarray      # True on the narrow face area (``HeadModel.face_index``)


class Renderer:
    """Renders stages and frames; holds no per-frame state (frames depend only on their inputs)."""

    def __init__(self, noise: bool = True) -> None:
        self.noise = noise
        self._rays_color = camera_rays(COLOR_CAMERA, 640, 360, DEPTH_TO_COLOR.rotation.T)
        self._rays_depth = camera_rays(DEPTH_CAMERA, DEPTH_CAMERA.width, DEPTH_CAMERA.height)
        if noise:
            NoiseTables.get()

    # ---------------------------------------------------------------------------------------
    def build_stage(self, plan: SequencePlan, head: HeadModel) -> Stage:
        g = rng("stage", plan.seed, plan.index)
        light = plan.lighting
        boxes = _room_boxes(plan)
        zc, rad, _, _, has_c = raycast_boxes(boxes, COLOR_CENTRE_IN_DEPTH.astype(np.float64), self._rays_color, light,
                                             COLOR_CAMERA.scaled(640, 360), DEPTH_TO_COLOR.rotation)
        zc = np.where(np.isfinite(zc), zc, 0.0)
        if not boxes:  # no room: a plain backdrop beyond the depth camera's range
            rad[:] = BACKDROP_LINEAR
        zd, _, ir, cos_inc, has_d = raycast_boxes(boxes, np.zeros(3), self._rays_depth, light, DEPTH_CAMERA)
        zd = np.where(has_d & (zd < MAX_RANGE_MM), zd, 0.0).astype(np.float32)
        sig = ir_signal(ir, cos_inc, np.maximum(zd, 1.0))
        sigma = noise_sigma_mm(sig, zd)
        p_hole = hole_probability(sig, cos_inc)
        # half-resolution colour (960 x 540) of the room
        rad_half = cv2.resize(rad.astype(np.float32), _HALF, interpolation=cv2.INTER_LINEAR)
        z_half = cv2.resize(zc.astype(np.float32), _HALF, interpolation=cv2.INTER_NEAREST)
        # the torso, splatted into both
        torso, rt, origin = torso_points(head, plan)
        tw = torso.transformed(rt, origin)
        col = shade(tw.normals, tw.albedo, tw.specular, tw.gloss, light, _view_dirs(origin)[0], 1.0, 0.8)
        pc = xform(tw.points, _R_DC, _T_DC)
        half = COLOR_CAMERA.scaled(*_HALF)
        u, v = half.project_xyz(pc[:, 0], pc[:, 1], pc[:, 2])
        idx = splat_nearest_safe(u, v, pc[:, 2], _HALF[0], _HALF[1], big=np.ones(len(u), bool))
        m = idx >= 0
        closer = m & ((pc[idx.clip(0), 2] < z_half) | (z_half <= 0))
        rad_half[closer] = col[idx[closer]]
        z_half[closer] = pc[idx[closer], 2]
        ud, vd = DEPTH_CAMERA.project_xyz(tw.points[:, 0], tw.points[:, 1], tw.points[:, 2])
        idd = splat_nearest_safe(ud, vd, tw.points[:, 2], DEPTH_CAMERA.width, DEPTH_CAMERA.height,
                                 big=np.ones(len(ud), bool))
        md = idd >= 0
        closer_d = md & ((tw.points[idd.clip(0), 2] < zd) | (zd <= 0))
        pts = tw.points[idd[closer_d]]
        zd[closer_d] = pts[:, 2]
        cos_t = np.abs((tw.normals[idd[closer_d]] * normalize(pts)).sum(1))
        s_t = ir_signal(tw.ir[idd[closer_d]], cos_t, pts[:, 2])
        sigma[closer_d] = noise_sigma_mm(s_t, pts[:, 2])
        p_hole[closer_d] = hole_probability(s_t, cos_t)
        # to 1080p with the camera's look
        full = cv2.resize(to_srgb8(rad_half), (COLOR_CAMERA.width, COLOR_CAMERA.height), interpolation=cv2.INTER_LINEAR)
        cam = plan.camera
        full = cv2.GaussianBlur(full, (0, 0), cam.blur_sigma_px)
        if self.noise:
            # sensor grain from the precomputed tables, one random window per quadrant
            table = NoiseTables.get().colour[cam.noise_level]
            hh, hw = full.shape[0] // 2, full.shape[1] // 2
            for qy in (0, hh):
                for qx in (0, hw):
                    oy = int(g.integers(0, table.shape[0] - hh + 1))
                    ox = int(g.integers(0, table.shape[1] - hw + 1))
                    q = full[qy:qy + hh, qx:qx + hw]
                    q[...] = cv2.add(q, table[oy:oy + hh, ox:ox + hw], dtype=cv2.CV_8U)
            ok, buf = cv2.imencode(".jpg", full, [cv2.IMWRITE_JPEG_QUALITY, cam.jpeg_quality])
            full = cv2.imdecode(buf, cv2.IMREAD_COLOR)
        extras = self._extras(plan, head)
        return Stage(full, z_half, zd, sigma.astype(np.float32), p_hole.astype(np.float32), rt.astype(np.float32),
                     origin.astype(np.float32), extras)

    def _extras(self, plan: SequencePlan, head: HeadModel) -> dict:
        g = rng("props", plan.seed, plan.index)
        skin = head.neck_albedo[0] if len(head.neck_albedo) else np.array([0.4, 0.3, 0.2])
        out: dict = {}
        if plan.cap:
            out["cap"] = cap_points(head, np.clip(g.uniform(0.02, 0.7, 3), 0, 1))
        if plan.scarf:
            out["scarf"] = scarf_points(head, np.clip(g.uniform(0.02, 0.6, 3), 0, 1))
        kinds = {e.kind for e in plan.occluders}
        if "hand" in kinds or "phone" in kinds or "bottle" in kinds:
            out["hand"] = hand(skin * 1.02, scale=head.identity.scale)
        if "bottle" in kinds:
            out["bottle"] = bottle(np.clip(g.uniform(0.05, 0.6, 3), 0, 1))
        if "phone" in kinds:
            out["phone"] = phone()
        return out

    # ---------------------------------------------------------------------------------------
    def _head_batch(self, head: HeadModel, st: FrameState, light: Lighting) -> _Batch:
        rot = st.rotation.astype(np.float32)
        c = st.centre_mm.astype(np.float32)
        pts = head.posed_points(st.jaw, st.smile, st.brows, st.blink)
        pw = xform(pts, rot, c)
        nw = xform(head.normals, rot)
        vis = rowdot(nw, pw - COLOR_CENTRE_IN_DEPTH * 0.5) < 0.03 * pw[:, 2]
        ids = np.flatnonzero(vis)
        pw, nw = pw[ids], nw[ids]
        a = head.packed[ids]  # one gather of every per-point attribute (a fresh array)
        alb = a[:, 0:3]
        # eyes: lids and irises for this frame
        if len(head.eye_index):
            ealb = head.eye_albedo(st.blink, st.gaze_mm)
            pos = np.clip(np.searchsorted(ids, head.eye_index), 0, len(ids) - 1)
            hit = ids[pos] == head.eye_index
            alb[pos[hit]] = ealb[hit]
        lh = np.ascontiguousarray(rot.T @ light.key_dir.astype(np.float32))
        key_vis = np.clip(a[:, 8] + matvec(a[:, 9:12], lh), 0.0, 1.0)
        view_c, view_d = _view_dirs(st.centre_mm)
        col = shade(nw, alb, a[:, 3], a[:, 4], light, view_c, key_vis, a[:, 7])
        cos_d = np.abs(matvec(nw, view_d))
        sig = ir_signal(a[:, 5], cos_d, pw[:, 2])
        return _Batch(pw, to_srgb8(col), sig, cos_d, a[:, 6], a[:, 12], face_flags(head)[ids])

    def _rigid_batch(self, ps: PointSet, rot: np.ndarray, t: np.ndarray, light: Lighting, ao: float = 0.8) -> _Batch:
        rot = np.asarray(rot, np.float32)
        pw = xform(ps.points, rot, t)
        nw = xform(ps.normals, rot)
        vis = rowdot(nw, pw) < 0.03 * pw[:, 2]
        pw, nw = pw[vis], nw[vis]
        view_c, view_d = _view_dirs(np.asarray(t, np.float64))
        col = shade(nw, ps.albedo[vis], ps.specular[vis], ps.gloss[vis], light, view_c, 1.0, ao)
        cos_d = np.abs(matvec(nw, view_d))
        sig = ir_signal(ps.ir[vis], cos_d, pw[:, 2])
        return _Batch(pw, to_srgb8(col), sig, cos_d, np.zeros(len(pw), np.float32),
                      np.full(len(pw), ps.spacing, np.float32), np.zeros(len(pw), bool))

    def _neck_batch(self, head: HeadModel, st: FrameState, stage: Stage, light: Lighting) -> _Batch:
        rot = st.rotation.astype(np.float32)
        w = head.neck_weight[:, None]
        p_head = xform(head.neck_points, rot, st.centre_mm)
        p_torso = xform(head.neck_points, stage.torso_rotation, stage.torso_origin)
        pw = p_torso + w * (p_head - p_torso)
        n_torso = xform(head.neck_normals, stage.torso_rotation)
        nw = normalize(n_torso + w * (xform(head.neck_normals, rot) - n_torso))
        vis = rowdot(nw, pw) < 0.03 * pw[:, 2]
        pw, nw = pw[vis], nw[vis]
        n = len(pw)
        view_c, view_d = _view_dirs(st.centre_mm)
        col = shade(nw, head.neck_albedo[vis], np.float32(0.04), np.float32(12.0), light, view_c, 1.0, 0.75)
        cos_d = np.abs(matvec(nw, view_d))
        sig = ir_signal(np.full(n, 0.5, np.float32), cos_d, pw[:, 2])
        sp = np.float32(head.cache.get("neck_spacing", 2.2))
        return _Batch(pw, to_srgb8(col), sig, cos_d, np.zeros(n, np.float32), np.full(n, sp, np.float32),
                      np.zeros(n, bool))

    def _occluder_batches(self, head: HeadModel, st: FrameState, stage: Stage, light: Lighting) -> list[_Batch]:
        out = []
        ex = stage.extras
        rot = st.rotation
        c = st.centre_mm
        if "cap" in ex:
            out.append(self._rigid_batch(ex["cap"], rot, c, light))
        if "scarf" in ex:
            out.append(self._rigid_batch(ex["scarf"], stage.torso_rotation, stage.torso_origin, light))
        if st.occluder is None or st.occluder_amount <= 0.0:
            return out
        a = float(np.clip(st.occluder_amount, 0, 1))
        lm = head.landmarks
        var = st.occluder_variant

        def place(local_pos: np.ndarray, local_rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            """Head-relative target pose, swung in from below the frame by the amount a."""
            target_t = rot @ local_pos + c
            target_r = rot @ local_rot
            start_t = target_t + np.array([60.0, 420.0, -120.0])
            t = start_t + (target_t - start_t) * a
            r = rot_x(np.radians(35.0 * (1 - a))) @ target_r
            return r, t

        if st.occluder == "hand" and "hand" in ex:
            if var == 0:      # chin rests on the hand
                r, t = place(lm["chin"] + np.array([0.0, 40.0, -10.0]), rot_x(np.radians(-70)))
            elif var == 1:    # hand on the cheek
                r, t = place(lm["cheek_left"] + np.array([25.0, -10.0, 5.0]), rot_y(np.radians(-60)) @ rot_z(np.radians(-15)))
            elif var == 2:    # hand over the mouth
                r, t = place(lm["mouth"] + np.array([0.0, -5.0, -22.0]), rot_y(np.pi))
            else:             # rubbing the eyes
                r, t = place(lm["eye_right"] + np.array([10.0, 30.0, -30.0]), rot_y(np.pi) @ rot_z(np.radians(20)))
            out.append(self._rigid_batch(ex["hand"], r, t, light))
        elif st.occluder == "bottle" and "bottle" in ex:
            tilt = rot_x(np.radians(-55.0))  # the cap towards the mouth
            r, t = place(lm["mouth"] + np.array([0.0, 90.0, -75.0]), tilt)
            out.append(self._rigid_batch(ex["bottle"], r, t, light))
            rh, th = r @ rot_y(np.pi), r @ np.array([0.0, 30.0, 0.0]) + t + r @ np.array([0.0, 0.0, 40.0])
            out.append(self._rigid_batch(ex["hand"], rh, th, light))
        elif st.occluder == "phone" and "phone" in ex:
            if var < 2:       # a call at the ear
                side = "ear_left" if var == 0 else "ear_right"
                sgn = 1.0 if var == 0 else -1.0
                r, t = place(lm[side] + np.array([sgn * 12.0, 15.0, -25.0]), rot_y(sgn * np.radians(80)) @ rot_x(np.radians(-20)))
                out.append(self._rigid_batch(ex["phone"], r, t, light))
                out.append(self._rigid_batch(ex["hand"], r, t + r @ np.array([0.0, 0.0, 25.0]) * 1.0, light))
            else:             # looking at the screen in front of the face
                r, t = place(lm["mouth"] + np.array([0.0, 60.0, -230.0]), rot_x(np.radians(35)))
                out.append(self._rigid_batch(ex["phone"], r, t, light))
                out.append(self._rigid_batch(ex["hand"], r, t + r @ np.array([0.0, 50.0, 20.0]), light))
        return out

    # ---------------------------------------------------------------------------------------
    def render(self, plan: SequencePlan, st: FrameState, head: HeadModel, stage: Stage,
               g: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(colour uint8 1080x1920x3, depth uint16 424x512, clean depth uint16 424x512, face mask
        bool 424x512). The face mask is the clean depth's z-buffer: the pixels whose nearest surface
        (after the z-test against the stage) is a point of the head's narrow face area."""
        light = plan.lighting
        batches = [self._head_batch(head, st, light), self._neck_batch(head, st, stage, light)]
        batches += self._occluder_batches(head, st, stage, light)
        pw = np.concatenate([b.pw for b in batches])
        rgb = np.concatenate([b.rgb for b in batches])
        sig = np.concatenate([b.signal for b in batches])
        cos = np.concatenate([b.cos for b in batches])
        hair = np.concatenate([b.hair for b in batches])
        spacing = np.concatenate([b.spacing for b in batches])
        face = np.concatenate([b.face for b in batches])
        front = pw[:, 2] > 100.0
        if not front.all():
            pw, rgb, sig, cos, hair, spacing, face = (a[front] for a in (pw, rgb, sig, cos, hair, spacing, face))
        depth_clean, sigma, p_hole, face_mask = self._depth(pw, sig, cos, hair, spacing, face, stage)
        color = self._color(pw, rgb, spacing, stage, plan, g)
        clean16 = np.rint(depth_clean).astype(np.uint16)
        face_mask &= clean16 > 0
        if self.noise:
            depth = apply_depth_sensor(depth_clean, sigma, p_hole, g)
        else:
            depth = clean16.copy()
        return color, depth, clean16, face_mask

    def _depth(self, pw, sig, cos, hair, spacing, face, stage: Stage):
        cam = DEPTH_CAMERA
        # the depth camera has far fewer pixels on the head than the colour rendering: every
        # k-th point is enough to cover it (points lie about 1.2 mm apart on the face)
        zmed = float(np.median(pw[:: max(len(pw) // 300, 1), 2]))
        k = max(1, int(1.4 / (1.25 * cam.fx / zmed)))
        if k > 1:
            pw, sig, cos, hair, face = pw[::k], sig[::k], cos[::k], hair[::k], face[::k]
            spacing = spacing[::k] * np.float32(k)
        z = pw[:, 2]
        u, v = cam.project_xyz(pw[:, 0], pw[:, 1], z)
        x0 = int(max(np.floor(u.min()) - 2, 0))
        y0 = int(max(np.floor(v.min()) - 2, 0))
        x1 = int(min(np.ceil(u.max()) + 3, cam.width))
        y1 = int(min(np.ceil(v.max()) + 3, cam.height))
        depth = stage.depth.copy()
        sigma = stage.sigma.copy()
        p_hole = stage.p_hole.copy()
        face_mask = np.zeros(depth.shape, bool)
        if x1 <= x0 or y1 <= y0:
            return depth, sigma, p_hole, face_mask
        big = footprint_class(spacing * (cam.fx / z))
        idx = splat_nearest_safe(u - x0, v - y0, z, x1 - x0, y1 - y0, big=big)
        reg = depth[y0:y1, x0:x1]
        m = idx >= 0
        zi = np.where(m, z[idx.clip(0)], 0.0)
        take = m & ((zi < reg) | (reg <= 0))
        sel = idx[take]
        reg[take] = zi[take]
        sigma[y0:y1, x0:x1][take] = noise_sigma_mm(sig[sel], z[sel])
        p_hole[y0:y1, x0:x1][take] = hole_probability(sig[sel], cos[sel], hair[sel])
        face_mask[y0:y1, x0:x1][take] = face[sel]  # the winning point's flag, where it beat the stage
        return depth, sigma, p_hole, face_mask

    def _color(self, pw, rgb, spacing, stage: Stage, plan: SequencePlan, g: np.random.Generator) -> np.ndarray:
        cam = COLOR_CAMERA
        frame = np.empty_like(stage.color)
        np.copyto(frame, stage.color)
        pc = xform(pw, _R_DC, _T_DC)
        z = pc[:, 2]
        u, v = cam.project_xyz(pc[:, 0], pc[:, 1], z)
        x0 = int(max(np.floor(u.min()) - 3, 0))
        y0 = int(max(np.floor(v.min()) - 3, 0))
        x1 = int(min(np.ceil(u.max()) + 4, cam.width))
        y1 = int(min(np.ceil(v.max()) + 4, cam.height))
        if x1 - x0 < 4 or y1 - y0 < 4:
            return frame
        zmed = float(np.median(z[:: max(len(z) // 500, 1)]))
        s = min(1.0, PX_PER_MM * zmed / cam.fx)
        wp, hp = x1 - x0, y1 - y0
        wi, hi = max(int(round(wp * s)), 2), max(int(round(hp * s)), 2)
        sx, sy = wi / wp, hi / hp
        ui = (u - x0 + 0.5) * sx - 0.5
        vi = (v - y0 + 0.5) * sy - 0.5
        big = footprint_class(spacing * (cam.fx * s / z))
        idx = splat_nearest_safe(ui, vi, z, wi, hi, big=big)
        m = idx >= 0
        # z-test against the stage (torso, chair, ...) at the same pixels
        zs = stage.color_z_half[y0 // 2:(y1 + 1) // 2, x0 // 2:(x1 + 1) // 2]
        zs = cv2.resize(zs, (wi, hi), interpolation=cv2.INTER_NEAREST)
        zi = np.where(m, z[idx.clip(0)], 0.0)
        m &= (zi < zs) | (zs <= 0)
        patch = np.zeros((hi, wi, 3), np.uint8)
        patch[m] = rgb[idx[m]]
        mask8 = m.astype(np.uint8) * 255
        # bleed colours outwards so the upscaled silhouette has no dark fringe
        grown = cv2.dilate(patch, np.ones((3, 3), np.uint8))
        cv2.copyTo(patch, mask8, grown)
        patch = grown
        if (wi, hi) != (wp, hp):
            patch = cv2.resize(patch, (wp, hp), interpolation=cv2.INTER_LINEAR)
            mask8 = cv2.resize(mask8, (wp, hp), interpolation=cv2.INTER_LINEAR)
        _, mask8 = cv2.threshold(mask8, 127, 255, cv2.THRESH_BINARY)
        region = frame[y0:y1, x0:x1]
        cv2.copyTo(patch, mask8, region)
        cam_look = plan.camera
        processed = colour_effects(region, cam_look.blur_sigma_px, cam_look.noise_level, cam_look.jpeg_quality, g,
                                   noise=self.noise)
        # the camera effects apply to the person; the stage already carries its own
        near = cv2.dilate(mask8, np.ones((5, 5), np.uint8))
        cv2.copyTo(processed, near, region)
        return frame


def face_flags(head: HeadModel) -> np.ndarray:
    """Per point of ``head``: True on its narrow face area (``face_index``; cached on the head)."""
    flags = head.cache.get("face_flags")
    if flags is None:
        flags = np.zeros(len(head.points), bool)
        if head.face_index is not None:
            flags[head.face_index] = True
        head.cache["face_flags"] = flags
    return flags


def footprint_class(spacing_px: np.ndarray) -> np.ndarray:
    """Splat size per point from its spacing in pixels: 0 = 2x2, 1 = 3x3, 2 = 5x5, 3 = 7x7."""
    return np.searchsorted(np.array([1.9, 2.9, 4.9], np.float32), spacing_px).astype(np.int8)


def splat_nearest_safe(u, v, z, width, height, big=None):
    return splat_nearest(np.asarray(u, np.float32), np.asarray(v, np.float32), np.asarray(z, np.float32),
                         int(width), int(height), 2, big)
