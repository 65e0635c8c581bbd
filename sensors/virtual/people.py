"""A procedural parametric head: identities, geometry, appearance and expressions.

No face-model file is involved: a head is built from an :class:`Identity` (a parameter vector
drawn from a seed) as a dense point surface around the skull centre.

Model coordinates used while building (``M``): X to the image right when the head faces the
camera (the subject's left), Y up, Z out of the face (towards the camera), origin at the centre
of the skull. The finished :class:`HeadModel` stores everything in *head axes* (``H``), the
camera's own axes for a head that faces it: x right, y down, z away from the camera
(``H = (X, -Y, -Z)``). A head pose ``(R, c)`` places a head-axes point p at ``R p + c`` in the
depth camera; ``R = I`` is a head facing the camera, ``c`` the skull centre.

The surface is star-shaped around the skull centre: a base shape (a smooth union of
superellipsoids for the cranium, the midface and the jaw) gives a radius per direction, and
anatomically placed features (brow ridge, eye sockets, nose, cheekbones, lips, chin, ears, hair)
add radial displacements. Directions are sampled densely on the face (about 1.2 mm apart) and
more coarsely behind it.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import numpy as np

from sensors.virtual._util import normalize, rng, smoothstep
from sensors.virtual.scan_heads import PART_EYE, PART_NARROW_FACE, ScanShape, SphericalHits, fill_holes, \
    raster_spherical
from sensors.virtual.shapes import smooth_min, superellipsoid

# --------------------------------------------------------------------------------------------
# identity parameters
# --------------------------------------------------------------------------------------------

HAIR_STYLES = ("bald", "buzz", "short", "medium", "long", "curly")
BEARD_STYLES = ("none", "stubble", "goatee", "full")

#: sRGB-ish hair colours (linear RGB), from black to platinum, plus red and grey
_HAIR_COLOURS = np.array([
    [0.012, 0.010, 0.009],  # black
    [0.030, 0.018, 0.012],  # dark brown
    [0.075, 0.040, 0.020],  # brown
    [0.180, 0.110, 0.050],  # light brown
    [0.420, 0.300, 0.150],  # dark blond
    [0.650, 0.520, 0.300],  # blond
    [0.300, 0.080, 0.030],  # red
    [0.400, 0.390, 0.380],  # grey
    [0.700, 0.690, 0.660],  # white
])
_HAIR_COLOUR_P = np.array([0.26, 0.22, 0.16, 0.1, 0.07, 0.05, 0.04, 0.06, 0.04])

#: iris colours (linear RGB)
_IRIS_COLOURS = np.array([
    [0.030, 0.012, 0.005],  # dark brown
    [0.090, 0.040, 0.012],  # brown
    [0.110, 0.090, 0.030],  # hazel
    [0.060, 0.110, 0.050],  # green
    [0.060, 0.120, 0.220],  # blue
    [0.130, 0.150, 0.170],  # grey
])
_IRIS_P = np.array([0.4, 0.2, 0.12, 0.08, 0.14, 0.06])


@dataclass(frozen=True)
class Identity:
    """One synthetic person: shape (mm and unitless factors), appearance and accessories.

    Shape parameters (independent draws; each moves a named anatomical region):
    ``head_width``, ``head_height``, ``head_depth`` (cranium semi-axes, mm), ``forehead_slope``,
    ``brow_ridge``, ``eye_socket_depth``, ``eye_spacing``, ``eye_height``, ``nose_length``,
    ``nose_width``, ``nose_projection``, ``nose_bridge``, ``nose_hump``, ``nose_tip_lift``,
    ``cheekbones``, ``cheekbone_height``, ``cheek_fullness``, ``mouth_width``, ``upper_lip``,
    ``lower_lip``, ``philtrum``, ``chin_projection``, ``chin_height``, ``chin_width``,
    ``jaw_width``, ``face_width``, ``midface_projection``, ``ear_size``, ``ear_protrusion``, ``scale``,
    ``asymmetry``, ``neck_width``, ``eye_tilt``.
    """

    subject: int
    # -- shape --------------------------------------------------------------------------------
    head_width: float = 74.0
    head_height: float = 98.0
    head_depth: float = 100.0
    forehead_slope: float = 0.5
    brow_ridge: float = 4.0
    eye_socket_depth: float = 9.0
    eye_spacing: float = 32.0
    eye_height: float = 8.0
    nose_length: float = 48.0
    nose_width: float = 34.0
    nose_projection: float = 24.0
    nose_bridge: float = 9.0
    nose_hump: float = 0.0
    nose_tip_lift: float = 0.0
    cheekbones: float = 5.0
    cheekbone_height: float = 0.0
    cheek_fullness: float = 0.0
    mouth_width: float = 50.0
    upper_lip: float = 4.0
    lower_lip: float = 5.0
    philtrum: float = 15.0
    chin_projection: float = 5.0
    chin_height: float = 46.0
    chin_width: float = 16.0
    jaw_width: float = 50.0
    face_width: float = 64.0
    midface_projection: float = 0.0
    ear_size: float = 1.0
    ear_protrusion: float = 10.0
    scale: float = 1.0
    asymmetry: float = 1.0
    neck_width: float = 56.0
    eye_tilt: float = 0.0
    # -- appearance ---------------------------------------------------------------------------
    skin_tone: float = 0.5           # 0 = very light .. 1 = very dark (melanin)
    skin_hue: float = 0.0            # -1 = pink .. +1 = olive / yellow
    skin_redness: float = 0.3
    freckles: float = 0.0
    hair_colour: tuple[float, float, float] = (0.03, 0.018, 0.012)
    hair_style: str = "short"
    hair_thickness: float = 10.0
    hairline: float = 55.0           # brow to hairline, mm
    hair_recession: float = 0.0
    fringe: float = 0.0              # 0 none .. 1 down to the brows
    eyebrow_thickness: float = 5.0
    eyebrow_density: float = 0.8
    iris_colour: tuple[float, float, float] = (0.03, 0.012, 0.005)
    lip_colour: float = 0.5          # how much redder than the skin
    beard_style: str = "none"
    beard_density: float = 0.0
    glasses: bool = False
    glasses_colour: tuple[float, float, float] = (0.02, 0.02, 0.02)
    glasses_size: float = 1.0
    shirt_colour: tuple[float, float, float] = (0.2, 0.2, 0.3)
    garment: str = "tshirt"

    def shape_vector(self) -> np.ndarray:
        """The shape parameters as one vector (for tests and for naming what differs)."""
        names = [f.name for f in fields(self)]
        stop = names.index("skin_tone")
        return np.array([float(getattr(self, n)) for n in names[1:stop]])


def sample_identity(seed: int, subject: int) -> Identity:
    """The identity of ``subject`` under ``seed``: a pure function of both numbers."""
    g = rng("identity", seed, subject)
    n = g.normal
    u = g.uniform
    female = g.random() < 0.5
    sx = -1.0 if female else 1.0  # a few parameters shift with sex, all overlap widely

    def cn(mean: float, sd: float, lo: float, hi: float) -> float:
        return float(np.clip(mean + sd * n(), lo, hi))

    style_p = np.array([0.04, 0.1, 0.3, 0.2, 0.3, 0.06]) if female else np.array(
        [0.12, 0.2, 0.42, 0.14, 0.06, 0.06])
    hair_style = str(g.choice(HAIR_STYLES, p=style_p / style_p.sum()))
    if female:
        hair_style = "medium" if hair_style == "bald" else hair_style
    hair_colour = _HAIR_COLOURS[g.choice(len(_HAIR_COLOURS), p=_HAIR_COLOUR_P / _HAIR_COLOUR_P.sum())]
    hair_colour = tuple(float(c) for c in hair_colour * np.exp(0.12 * n(3)))
    beard = "none"
    if not female:
        beard = str(g.choice(BEARD_STYLES, p=[0.5, 0.25, 0.1, 0.15]))
    thickness = {"bald": 0.0, "buzz": 2.0, "short": cn(9, 3, 4, 16), "medium": cn(14, 4, 8, 22),
                 "long": cn(12, 3, 7, 18), "curly": cn(28, 7, 16, 42)}[hair_style]
    skin_tone = float(np.clip(u(-0.05, 1.05), 0.0, 1.0))
    shirts = np.array([[0.02, 0.02, 0.025], [0.6, 0.6, 0.6], [0.05, 0.08, 0.2], [0.25, 0.02, 0.02],
                       [0.03, 0.12, 0.05], [0.3, 0.25, 0.15], [0.12, 0.12, 0.12], [0.5, 0.3, 0.02],
                       [0.15, 0.3, 0.5], [0.4, 0.05, 0.2]])
    shirt = shirts[g.integers(len(shirts))] * np.exp(0.2 * n(3))
    return Identity(
        subject=int(subject),
        head_width=cn(74 - 2 * sx, 3.5, 64, 84),
        head_height=cn(98, 4, 88, 110),
        head_depth=cn(100 + 2 * sx, 4, 90, 112),
        forehead_slope=cn(0.5 + 0.15 * sx, 0.3, 0.0, 1.3),
        brow_ridge=cn(3.5 + 1.5 * sx, 1.8, 0.0, 9.0),
        eye_socket_depth=cn(9, 2.2, 4, 15),
        eye_spacing=cn(32, 1.8, 27.5, 37),
        eye_height=cn(8, 3, 0, 16),
        nose_length=cn(47 + 2 * sx, 4, 38, 58),
        nose_width=cn(34 + 1.5 * sx, 3.5, 26, 44),
        nose_projection=cn(26 + sx, 3.5, 17, 35),
        nose_bridge=cn(9, 2.5, 3, 15),
        nose_hump=cn(0.0, 1.6, -3, 4),
        nose_tip_lift=cn(0, 2.5, -5, 6),
        cheekbones=cn(5, 2.2, 0, 11),
        cheekbone_height=cn(0, 4, -8, 8),
        cheek_fullness=cn(0, 3, -6, 7),
        mouth_width=cn(50 + sx, 3.5, 40, 60),
        upper_lip=cn(4.2 - 0.3 * sx, 1.1, 1.5, 7.5),
        lower_lip=cn(5.0 - 0.3 * sx, 1.3, 2.0, 8.5),
        philtrum=cn(15 + sx, 2.2, 10, 21),
        chin_projection=cn(5 + sx, 3, -3, 13),
        chin_height=cn(46 + 2 * sx, 4, 36, 58),
        chin_width=cn(16 + 2 * sx, 3.5, 9, 26),
        jaw_width=cn(50 + 2.5 * sx, 3.5, 41, 60),
        face_width=cn(64 + 2 * sx, 2.5, 57, 71),
        midface_projection=cn(0, 3.5, -8, 8),
        ear_size=cn(1.0, 0.08, 0.8, 1.2),
        ear_protrusion=cn(10, 4, 3, 20),
        scale=cn(1.0 + 0.025 * sx, 0.03, 0.9, 1.1),
        asymmetry=cn(1.0, 0.5, 0.0, 2.5),
        neck_width=cn(56 + 4 * sx, 3.5, 46, 68),
        eye_tilt=cn(0, 2.0, -5, 5),
        skin_tone=skin_tone,
        skin_hue=cn(0, 0.5, -1, 1),
        skin_redness=cn(0.3, 0.15, 0, 0.8),
        freckles=float(max(0.0, u(-0.6, 1.0)) * (1.0 - skin_tone) ** 2),
        hair_colour=hair_colour,
        hair_style=hair_style,
        hair_thickness=float(thickness),
        hairline=cn(55 + 3 * sx, 5, 42, 70),
        hair_recession=float(max(0.0, u(-0.8, 1.0))) if not female else 0.0,
        fringe=float(max(0.0, u(-1.2, 1.0))) if hair_style in ("short", "medium", "long") else 0.0,
        eyebrow_thickness=cn(5.5 + 0.8 * sx, 1.2, 3, 9),
        eyebrow_density=cn(0.75, 0.15, 0.35, 1.0),
        iris_colour=tuple(float(c) for c in _IRIS_COLOURS[g.choice(len(_IRIS_COLOURS), p=_IRIS_P)]),
        lip_colour=cn(0.5 + 0.15 * (-sx), 0.15, 0.15, 0.9),
        beard_style=beard,
        beard_density=cn(0.7, 0.2, 0.25, 1.0) if beard != "none" else 0.0,
        glasses=bool(g.random() < 0.22),
        glasses_colour=tuple(float(c) for c in [[0.015, 0.015, 0.015], [0.08, 0.04, 0.02],
                                                 [0.35, 0.33, 0.3], [0.05, 0.05, 0.15]][g.integers(4)]),
        glasses_size=cn(1.0, 0.08, 0.85, 1.15),
        shirt_colour=tuple(float(c) for c in np.clip(shirt, 0.01, 0.85)),
        garment=str(g.choice(["tshirt", "shirt", "jacket", "hoodie"])),
    )


# --------------------------------------------------------------------------------------------
# the built head
# --------------------------------------------------------------------------------------------

#: angular step of the face's points (degrees; about 1.3 mm on the face)
FACE_STEP_DEG = 0.78

#: material codes stored per point
SKIN, HAIR, EYE, LIP, INTERIOR, TEETH, GLASSES, BROW, CLOTH, PROP = range(10)


@dataclass
class HeadModel:
    """A built head in head axes (see the module docstring), every array one row per point.

    ``points`` and ``normals`` (N x 3, float32); ``albedo`` (N x 3 linear RGB); ``specular``
    and ``gloss`` (Blinn-Phong strength and exponent); ``ir`` (reflectance at the depth camera's
    850 nm, drives holes and noise); ``material`` (uint8 code); ``shadow`` (N x 4: visibility of
    a light from head-axes direction l is ``clip(shadow[:, 0] + shadow[:, 1:] @ l, 0, 1)``, a
    smooth precomputed self-shadowing and ambient occlusion term).

    Expressions are displacement fields over a subset of points: ``blend[name] = (indices,
    displacement N_k x 3)``, applied with weights in [0, 1] (``jaw`` opens the mouth,
    ``smile``, ``brows`` raises them). ``eye_*`` arrays describe the eye openings for blinks and
    gaze. ``neck_*`` is the neck, skinned between the head and the torso.
    """

    identity: Identity
    points: np.ndarray
    normals: np.ndarray
    albedo: np.ndarray
    specular: np.ndarray
    gloss: np.ndarray
    ir: np.ndarray
    material: np.ndarray
    shadow: np.ndarray
    blend: dict[str, tuple[np.ndarray, np.ndarray]]
    eye_index: np.ndarray        # points inside an eye opening
    eye_q: np.ndarray            # 0 at the upper lid edge .. 1 at the lower lid edge
    eye_xy: np.ndarray           # (X, Y) in model coordinates, mm, relative to that eye's centre
    eye_lid_albedo: np.ndarray   # colour of the closed lid at those points
    eye_open_albedo: np.ndarray  # sclera colour at those points
    iris_colour: np.ndarray
    neck_points: np.ndarray
    neck_normals: np.ndarray
    neck_albedo: np.ndarray
    neck_weight: np.ndarray      # 1 = moves with the head, 0 = with the torso
    spacing: np.ndarray | None = None      # distance to the neighbouring points, mm
    landmarks: dict[str, np.ndarray] = field(default_factory=dict)  # head axes, mm
    cache: dict = field(default_factory=dict)  # derived geometry (torso, props), built on demand
    radius_grid: np.ndarray | None = None   # outer surface radius on a uniform 2-degree grid
    face_index: np.ndarray | None = None    # points of the face proper (Frame.face_mask, tests)

    @property
    def packed(self) -> np.ndarray:
        """Per-point attributes in one N x 13 float32 array (one gather per frame): albedo (3),
        specular, gloss, ir, hair (1 on hair), ambient occlusion, shadow (4), spacing."""
        p = self.cache.get("packed")
        if p is None:
            ao = np.clip(self.shadow[:, 0] + (self.shadow[:, 1:] * self.normals).sum(1), 0.25, 1.0)
            p = np.concatenate([
                self.albedo, self.specular[:, None], self.gloss[:, None], self.ir[:, None],
                (self.material == HAIR).astype(np.float32)[:, None], ao[:, None], self.shadow,
                self.spacing[:, None]], axis=1).astype(np.float32)
            self.cache["packed"] = p
        return p

    def posed_points(self, jaw: float = 0.0, smile: float = 0.0, brows: float = 0.0, blink: float = 0.0) -> np.ndarray:
        """Points with the expression weights applied (a new array). Only scan heads close their
        lids in geometry (``blink``); every head's blink also shows in :meth:`eye_albedo`."""
        p = self.points.copy()
        for name, w in (("jaw", jaw), ("smile", smile), ("brows", brows), ("blink", blink)):
            if w != 0.0 and name in self.blend:
                idx, d = self.blend[name]
                p[idx] += np.float32(w) * d
        return p

    def eye_albedo(self, blink: float, gaze_xy_mm: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
        """Albedo of the eye-opening points for an eyelid closure ``blink`` in [0, 1] and a gaze
        offset of the irises (mm, model X right / Y up)."""
        gx, gy = gaze_xy_mm
        dx = self.eye_xy[:, 0] - gx
        dy = self.eye_xy[:, 1] - gy
        r2 = dx * dx + dy * dy
        col = self.eye_open_albedo.copy()
        iris = r2 < 5.6 ** 2
        col[iris] = self.iris_colour * (0.6 + 0.4 * np.sqrt(r2[iris])[:, None] / 5.6)
        col[r2 < 2.3 ** 2] = 0.004
        # the upper lid covers from the top; its edge carries the lashes
        lid = self.eye_q < 0.08 + 1.0 * blink
        col[lid] = self.eye_lid_albedo[lid]
        edge = np.abs(self.eye_q - (0.08 + 1.0 * blink)) < 0.12
        col[edge] *= 0.25
        return col


# --------------------------------------------------------------------------------------------
# building
# --------------------------------------------------------------------------------------------

def _nonuniform(lo: float, hi: float, dense_lo: float, dense_hi: float, fine: float, coarse: float) -> np.ndarray:
    """Angles from lo to hi (degrees) with step ``fine`` inside [dense_lo, dense_hi]."""
    a = np.arange(lo, dense_lo, coarse)
    b = np.arange(dense_lo, dense_hi, fine)
    c = np.arange(dense_hi, hi + 1e-9, coarse)
    return np.radians(np.concatenate([a, b, c]))


def _gauss(x: np.ndarray, sx: float, y: np.ndarray | None = None, sy: float = 1.0) -> np.ndarray:
    e = (x / sx) ** 2
    if y is not None:
        e = e + (y / sy) ** 2
    return np.exp(-0.5 * e)


class _Builder:
    """Builds a :class:`HeadModel`; kept as a class so the steps can share landmarks."""

    def __init__(self, ident: Identity, scan: ScanShape | None = None) -> None:
        self.i = ident
        self.scan = scan
        self.g = rng("head-detail", ident.subject, int(ident.head_width * 1000))
        i = ident
        # vertical landmarks (model Y, mm, unscaled)
        self.eye_y = i.eye_height
        self.brow_y = self.eye_y + 17.0
        self.nasion_y = self.eye_y + 3.0
        self.sn_y = self.eye_y - i.nose_length          # subnasale
        self.tip_y = self.sn_y + 7.0 + i.nose_tip_lift * 0.5
        self.mouth_y = self.sn_y - i.philtrum - 5.0     # stomion (mouth line)
        self.chin_y = self.mouth_y - i.chin_height      # menton
        if scan is not None:  # a scan head places the appearance by its own landmarks
            y = {k: float(v[1]) for k, v in scan.landmarks_mm.items()}
            self.eye_y, self.brow_y, self.nasion_y = y["eyes"], y["brows"], y["nasion"]
            self.sn_y, self.tip_y, self.mouth_y, self.chin_y = y["subnasale"], y["nose_tip"], y["mouth"], y["chin"]
        self.hair_y = self.brow_y + i.hairline

    def scan_hits(self, theta: np.ndarray, phi: np.ndarray) -> SphericalHits:
        """The scan surface on a longitude x latitude grid."""
        return raster_spherical(self.scan.vertices_mm, self.scan.triangles, theta, phi)

    # -- base shape ---------------------------------------------------------------------------
    def base_sdf(self, p: np.ndarray) -> np.ndarray:
        i = self.i
        cran = superellipsoid(p, (0.0, 10.0, -4.0), (i.head_width, i.head_height, i.head_depth), 2.15)
        # midface: widest at the cheekbones, narrowing towards the mouth
        my = self.eye_y - 20.0
        mid = superellipsoid(p, (0.0, my, 18.0 + i.midface_projection),
                              (i.face_width, 46.0, 70.0), 2.4, taper=0.22)
        # mandible: from the jaw angles to a chin of its own width
        jy = 0.5 * (self.mouth_y + 12.0 + self.chin_y)
        half_h = 0.5 * (self.mouth_y + 12.0 - self.chin_y) + 4.0
        jaw = superellipsoid(p, (0.0, jy, 26.0 + 0.5 * i.chin_projection),
                              (i.jaw_width, half_h, 60.0), 2.5,
                              taper=float(np.clip(1.0 - (i.chin_width + 8.0) / i.jaw_width, 0.2, 0.6)))
        d = smooth_min(cran, mid, 8.0)
        return smooth_min(d, jaw, 9.0)

    def base_radius(self, dirs: np.ndarray, guess: np.ndarray | None = None) -> np.ndarray:
        """Radius of the base shape along unit directions, by bisection (within +-8 mm of
        ``guess`` when one is given)."""
        if guess is None:
            lo = np.full(dirs.shape[:-1], 5.0)
            hi = np.full(dirs.shape[:-1], 220.0)
            steps = 22
        else:
            lo, hi, steps = guess - 8.0, guess + 8.0, 9
        for _ in range(steps):
            mid = 0.5 * (lo + hi)
            inside = self.base_sdf(dirs * mid[..., None]) < 0
            lo = np.where(inside, mid, lo)
            hi = np.where(inside, hi, mid)
        return 0.5 * (lo + hi)

    # -- facial features as radial displacement -----------------------------------------------
    def features(self, X: np.ndarray, Y: np.ndarray, Z: np.ndarray, theta: np.ndarray) -> dict[str, np.ndarray]:
        i = self.i
        front = smoothstep(Z, 15.0, 55.0)
        ax = np.abs(X)
        side = np.sign(X)
        asym = 1.0 + 0.03 * i.asymmetry * side * self.g.normal()
        out: dict[str, np.ndarray] = {}
        # forehead: slope pulls the upper forehead back, brow ridge a band above the eyes
        fh = np.clip(Y - self.brow_y, 0.0, None)
        out["forehead"] = -i.forehead_slope * 0.0022 * fh ** 2 * smoothstep(Z, 20, 70)
        brow = i.brow_ridge * _gauss(Y - (self.brow_y + 1.0 - 0.002 * X ** 2), 5.5) * smoothstep(-ax, -58, -40)
        glabella = 0.4 * i.brow_ridge * _gauss(X, 9.0, Y - self.nasion_y - 8.0, 7.0)
        out["brow"] = (brow + glabella) * front
        # eye sockets and eyeballs
        ex = ax - i.eye_spacing * asym
        ey = Y - self.eye_y - side * np.tan(np.radians(i.eye_tilt)) * ex
        socket = -(i.eye_socket_depth + 4.0) * _gauss(ex, 15.0, ey + 1.5, 11.0)
        eyeball = 5.0 * _gauss(ex, 9.0, ey, 6.0)
        out["eyes"] = (socket + eyeball) * front
        # nose: bridge from the nasion to the tip, growing out and wider; alae at its base
        span = self.nasion_y - self.tip_y
        t = np.clip((self.nasion_y - Y) / span, 0.0, None)
        base_h = i.nose_bridge + (i.nose_projection - i.nose_bridge) * np.clip(t, 0, 1) ** 1.35
        base_h = base_h + i.nose_hump * np.sin(np.pi * np.clip(t, 0, 1)) ** 2
        below = np.clip((self.tip_y - Y) / max(self.tip_y - self.sn_y, 2.0), 0.0, None)
        h = np.where(t <= 1.0, base_h, i.nose_projection * np.clip(1.0 - below ** 1.6, 0.0, None))
        top_fade = smoothstep(Y, self.nasion_y + 9.0, self.nasion_y - 2.0)
        w = 4.5 + (0.2 * i.nose_width - 3.0) * np.clip(t, 0, 1) ** 1.6
        nose = h * top_fade * np.exp(-0.5 * (X / w) ** 2 - 0.02 * (X / w) ** 4)
        alae = 0.3 * i.nose_projection * _gauss(ax - 0.32 * i.nose_width, 5.0, Y - self.sn_y - 5.0, 5.5)
        out["nose"] = (nose + alae) * front
        # cheeks: cheekbones high, a fold from the nose to the mouth corner, buccal fullness
        cy = self.eye_y - 22.0 + i.cheekbone_height
        cheekbone = i.cheekbones * _gauss(ax - 44.0, 13.0, Y - cy, 10.0)
        line_x = 0.32 * i.nose_width + (self.sn_y - Y) * 0.35
        fold = -1.5 * _gauss(ax - line_x - 4.0, 2.5) * smoothstep(Y, self.mouth_y - 2, self.mouth_y + 8) \
            * smoothstep(-Y, -self.sn_y - 3, -self.sn_y + 4)
        buccal = i.cheek_fullness * _gauss(ax - 42.0, 13.0, Y - self.mouth_y - 6.0, 13.0)
        out["cheeks"] = (cheekbone + fold + buccal) * front
        # mouth: lips either side of the mouth line, a philtrum groove, the sulcus below
        mw = 0.5 * i.mouth_width
        box = smoothstep(-ax, -mw - 3.0, -mw + 6.0)
        my = Y - self.mouth_y
        bow = 1.0 - 0.18 * _gauss(X, 3.0)
        taper = np.clip(1.0 - (X / (mw + 2.0)) ** 2, 0.0, 1.0) ** 0.7
        upper = 0.8 * i.upper_lip * bow * _gauss(my - 3.5, 3.0) * box * taper
        lower = 0.8 * i.lower_lip * _gauss(my + 4.5, 3.6) * box * taper
        line = -1.8 * _gauss(my, 1.0) * smoothstep(-ax, -mw - 1.0, -mw + 3.0)
        philtrum = -0.7 * _gauss(X, 2.5, my - 12.0, 5.0)
        mouth_mound = 4.0 * _gauss(X, mw * 0.8, my + 2.0, 13.0)
        sulcus = -2.2 * _gauss(X, 14.0, my + 14.0, 4.0)
        out["mouth"] = (upper + lower + line + philtrum + mouth_mound + sulcus) * front
        # chin
        chin = i.chin_projection * _gauss(X, i.chin_width, Y - self.chin_y - 16.0, 11.0)
        out["chin"] = chin * front
        # ears: flat lobes on the sides, radially protruding
        ear_t = np.abs(np.abs(theta) - np.radians(95.0))
        ear = i.ear_protrusion * _gauss(ear_t, 0.16 * i.ear_size, Y - (self.eye_y - 12.0), 26.0 * i.ear_size)
        ear = np.where(ear > 2.0, ear, ear * (ear / 2.0))
        out["ears"] = ear * (1.0 - front)
        return out


def build_head(ident: Identity, scan: ScanShape | None = None) -> HeadModel:
    """Build the full point model of ``ident`` (about 0.3 s; callers cache it).

    The steps, in this order (they draw from one random stream, so the order is part of the
    result): the base shape on a coarse grid, the radial surface with features and hair, its
    sampling into points with their appearance, shadows, expressions and eyes, the extra parts
    (mouth interior, long hair, glasses), the neck, and the turn to head axes.

    With ``scan`` the surface, its expressions and eye openings are the scan person's
    (:mod:`sensors.virtual.scan_heads`); the appearance (skin, hair, beard, glasses, clothes)
    is ``ident``'s, placed by the scan's landmarks.
    """
    if scan is not None:
        ident = scan_identity(ident, scan)
    b = _Builder(ident, scan)
    coarse = _coarse_grid(b)
    surface = _radial_surface(b, coarse)
    keep, spacing = _sampling(surface)
    # appearance on the surface
    alb, spec, gloss, ir, mat = _appearance(b, surface.X, surface.Y, surface.Z, surface.T, surface.P,
                                            surface.hair_mask, surface.feats)
    if scan is not None and scan.texture is not None:  # a textured scan wears its own skin
        alb = _texture_albedo(surface.hits, scan, alb)
    pts_m, nrm_m = surface.pts[keep], surface.nrm[keep]
    alb, spec, gloss, ir, mat = alb[keep], spec[keep], gloss[keep], ir[keep], mat[keep]
    Xf, Yf, Zf = surface.X[keep], surface.Y[keep], surface.Z[keep]
    spacing = spacing[keep]
    # the skin round the mouth stretches when the jaw opens: give it larger footprints
    stretch = (np.abs(Xf) < 0.5 * ident.mouth_width + 14.0) & (np.abs(Yf - b.mouth_y) < 6.0) & (Zf > 30)
    spacing = np.where(stretch, np.maximum(spacing, 3.2), spacing)

    radius_grid = _radius_grid(b, coarse)
    shadow = _shadow_sh(pts_m, nrm_m, radius_grid)
    if scan is None:
        blend = _blendshapes(b, Xf, Yf, Zf, pts_m)
        eye = _eye_data(b, Xf, Yf, Zf, alb)  # eyes: openings for blinks and gaze
    else:
        blend = _scan_blendshapes(surface.hits, scan, keep)
        part = surface.hits.interpolate_part(scan.part)[keep]  # each kept point's part of the scan
        eye = _eye_data(b, Xf, Yf, Zf, alb, opening=part == PART_EYE)

    # extra parts: mouth interior, long hair, glasses
    parts = [_mouth_interior(b, pts_m, Xf, Yf)]
    if ident.hair_style == "long":
        parts.append(_long_hair(b, radius_grid))
    if ident.glasses:
        parts.append(_glasses(b, radius_grid))
    n0 = len(pts_m)
    cloud = _append_parts({"points": pts_m, "normals": nrm_m, "albedo": alb, "specular": spec, "gloss": gloss,
                           "ir": ir, "material": mat, "shadow": shadow, "spacing": spacing}, parts)
    blend["jaw"] = _jaw_with_interior(b, blend["jaw"], cloud, n0, parts[0])
    neck = _neck(b, radius_grid)
    if scan is not None and scan.texture is not None:  # the neck in the scan's skin tone
        neck["albedo"] = neck["albedo"] * (np.median(alb[Zf > 30], axis=0) / _skin_colour(ident))
    landmarks = _landmarks(b, pts_m, Xf, Yf, Zf)
    if scan is None:
        face_sel = (Zf > 30) & (Yf < b.brow_y + 10) & (Yf > b.chin_y) & (np.abs(Xf) < 55)
    else:
        face_sel = part == PART_NARROW_FACE
    return _to_head_axes(ident, cloud, blend, eye, neck, landmarks, radius_grid, np.flatnonzero(face_sel))


@dataclass(frozen=True)
class _CoarseGrid:
    """The base shape on a 2-degree (latitude x longitude) grid: it starts the fine search and
    serves the shadow rays."""

    dirs: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    radius_mm: np.ndarray


@dataclass(frozen=True)
class _RadialSurface:
    """The head's surface on its fine grid (rows: latitude bottom to top, columns: longitude),
    model axes: the base shape (``X``, ``Y``, ``Z``) and its features, and the full surface
    with hair (``pts``, ``nrm``)."""

    theta: np.ndarray  # the grid's longitudes (rad)
    phi: np.ndarray  # its latitudes (rad)
    T: np.ndarray
    P: np.ndarray
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray
    feats: dict[str, np.ndarray]
    hair_mask: np.ndarray
    pts: np.ndarray
    nrm: np.ndarray
    hits: SphericalHits | None = None  # a scan head's mesh on the grid


def _coarse_grid(b: _Builder) -> _CoarseGrid:
    grid_t = np.radians(np.arange(-180.0, 180.0, 2.0))
    grid_p = np.radians(np.arange(-90.0, 90.01, 2.0))
    GT, GP = np.meshgrid(grid_t, grid_p)
    gd = np.stack([np.cos(GP) * np.sin(GT), np.sin(GP), np.cos(GP) * np.cos(GT)], axis=-1)
    if b.scan is not None:
        return _CoarseGrid(gd, GT, GP, fill_holes(b.scan_hits(grid_t, grid_p).radius_mm))
    return _CoarseGrid(gd, GT, GP, b.base_radius(gd))


def _radial_surface(b: _Builder, coarse: _CoarseGrid) -> _RadialSurface:
    """The base shape refined from the coarse grid, its features, then a hair layer over the
    scalp above a hairline that runs round the head."""
    theta = _nonuniform(-180.0, 180.0 - 1.2, -62.0, 62.0, FACE_STEP_DEG, 1.2)
    phi = _nonuniform(-84.0, 89.0, -62.0, 50.0, FACE_STEP_DEG, 1.2)
    T, P = np.meshgrid(theta, phi)
    dirs = np.stack([np.cos(P) * np.sin(T), np.sin(P), np.cos(P) * np.cos(T)], axis=-1)
    hits = None
    if b.scan is None:
        r0 = b.base_radius(dirs, guess=_grid_lookup(coarse.radius_mm, T, P))
        base = dirs * r0[..., None]
        X, Y, Z = base[..., 0], base[..., 1], base[..., 2]
        feats = b.features(X, Y, Z, T)
        r_face = r0 + sum(feats.values())
    else:  # the scan's own surface: no features added
        hits = b.scan_hits(theta, phi)
        r_face = fill_holes(hits.radius_mm)
        base = dirs * r_face[..., None]
        X, Y, Z = base[..., 0], base[..., 1], base[..., 2]
        feats = {"ears": np.zeros_like(X)}
    hair_mask, hair_h = _hair(b, X, Y, Z, T, P)
    pts = dirs * (r_face + hair_h)[..., None]
    return _RadialSurface(theta, phi, T, P, X, Y, Z, feats, hair_mask, pts, _grid_normals(pts), hits)


def _sampling(s: _RadialSurface) -> tuple[np.ndarray, np.ndarray]:
    """Which grid points to keep, and each one's real 3D spacing (mm).

    Columns are thinned where latitude circles shrink (towards the crown), keeping about 1.2 mm
    between points on the face and 2.1 mm elsewhere."""
    T, P, pts = s.T, s.P, s.pts
    dist_t = np.linalg.norm(np.roll(pts, -1, axis=1) - pts, axis=-1)
    dist_p = np.linalg.norm(np.diff(pts, axis=0, append=pts[-1:]), axis=-1)
    dense = (np.abs(np.degrees(T)) < 62.0) & (np.degrees(P) > -62.0) & (np.degrees(P) < 50.0)
    target = np.where(dense, 1.2, 2.1)
    k = np.maximum(1, np.floor(target / np.maximum(dist_t, 1e-3))).astype(np.int64)
    k = np.broadcast_to(k.min(axis=1, keepdims=True), k.shape)  # one step per latitude row
    col = np.arange(T.shape[1])[None, :]
    keep = (col % k) == 0
    # outside the face, rows sampled at the face's fine latitude step are halved as well
    fine_rows = np.abs(np.gradient(s.phi) - np.radians(FACE_STEP_DEG)) < 1e-6
    coarse_cols = np.abs(np.gradient(s.theta) - np.radians(FACE_STEP_DEG)) > 1e-6
    row = np.arange(T.shape[0])[:, None]
    halve = fine_rows[:, None] & coarse_cols[None, :]
    keep &= ~halve | (row % 2 == 0)
    spacing = np.maximum(k * dist_t, np.where(halve, 2.0, 1.0) * dist_p)
    return keep, spacing


def _radius_grid(b: _Builder, coarse: _CoarseGrid) -> np.ndarray:
    """The full surface's radius (features and hair) on the coarse grid, for shadow rays and
    the parts laid over the head."""
    gb = coarse.dirs * coarse.radius_mm[..., None]
    # the scan's radius already holds its features
    gfe = b.features(gb[..., 0], gb[..., 1], gb[..., 2], coarse.theta) if b.scan is None else {}
    ghair = _hair(b, gb[..., 0], gb[..., 1], gb[..., 2], coarse.theta, coarse.phi)[1]
    return (coarse.radius_mm + sum(gfe.values()) + ghair).astype(np.float32)


def _append_parts(cloud: dict[str, np.ndarray], parts: list[dict]) -> dict[str, np.ndarray]:
    """The head's points followed by each part's; a part without its own shadow term gets a
    plain ambient one, without its own spacing 1.2 mm."""
    for part in parts:
        n = len(part["points"])
        extra = {**part, "shadow": part.get("shadow", np.tile([[0.75, 0, 0, 0]], (n, 1))),
                 "spacing": np.full(n, part.get("spacing", 1.2))}
        cloud = {k: np.concatenate([v, extra[k]]) for k, v in cloud.items()}
    return cloud


def _jaw_with_interior(b: _Builder, jaw: tuple[np.ndarray, np.ndarray], cloud: dict[str, np.ndarray], n0: int,
                       interior_part: dict) -> tuple[np.ndarray, np.ndarray]:
    """The jaw blendshape extended to the mouth interior's lower half (tongue, lower teeth),
    which moves with the jaw; the interior's points start at ``n0``."""
    interior = np.flatnonzero(cloud["material"][n0:n0 + len(interior_part["points"])] >= 0) + n0
    low = interior[interior_part["lower"]]
    jidx, jd = jaw
    jaw_low = _jaw_displacement(b, cloud["points"][low], np.ones(len(low)))
    return np.concatenate([jidx, low]), np.concatenate([jd, jaw_low])


def _landmarks(b: _Builder, pts: np.ndarray, X: np.ndarray, Y: np.ndarray, Z: np.ndarray) -> dict[str, np.ndarray]:
    """Named points of the face (model axes): the front surface point nearest each (x, y)."""
    i = b.i

    def surf(x: float, y: float) -> np.ndarray:
        j = int(np.argmin((X - x) ** 2 + (Y - y) ** 2 + 1e6 * (Z < 0)))
        return pts[j].copy()

    return {
        "nose_tip": surf(0.0, b.tip_y), "mouth": surf(0.0, b.mouth_y), "chin": surf(0.0, b.chin_y + 12.0),
        "eye_left": surf(i.eye_spacing, b.eye_y), "eye_right": surf(-i.eye_spacing, b.eye_y),
        "cheek_left": surf(45.0, b.mouth_y + 15.0), "cheek_right": surf(-45.0, b.mouth_y + 15.0),
        "forehead": surf(0.0, b.brow_y + 22.0),
        "ear_left": np.array([i.head_width + 4.0, b.eye_y - 12.0, -6.0]),
        "ear_right": np.array([-i.head_width - 4.0, b.eye_y - 12.0, -6.0]),
    }


def _to_head_axes(i: Identity, cloud: dict[str, np.ndarray], blend: dict, eye: dict, neck: dict,
                  landmarks: dict[str, np.ndarray], radius_grid: np.ndarray, face_index: np.ndarray) -> HeadModel:
    """The model turned from model axes (y up, z towards the face) to head axes (x right, y
    down, z away from the camera) and scaled to the person."""
    flip = np.array([1.0, -1.0, -1.0])
    to_h_dir = lambda a: (a * flip).astype(np.float32)  # noqa: E731
    to_h = lambda a: (a * (flip * i.scale)).astype(np.float32)  # noqa: E731
    sh = cloud["shadow"].copy()
    sh[:, 1:] *= flip
    blend_h = {k: (idx.astype(np.int64), to_h(d)) for k, (idx, d) in blend.items()}
    return HeadModel(
        identity=i,
        points=to_h(cloud["points"]), normals=to_h_dir(cloud["normals"]), albedo=cloud["albedo"].astype(np.float32),
        specular=cloud["specular"].astype(np.float32), gloss=cloud["gloss"].astype(np.float32),
        ir=cloud["ir"].astype(np.float32),
        material=cloud["material"].astype(np.uint8), shadow=sh.astype(np.float32), blend=blend_h,
        eye_index=eye["index"], eye_q=eye["q"].astype(np.float32), eye_xy=eye["xy"].astype(np.float32),
        eye_lid_albedo=eye["lid"].astype(np.float32), eye_open_albedo=eye["open"].astype(np.float32),
        iris_colour=np.asarray(i.iris_colour, np.float32),
        neck_points=to_h(neck["points"]), neck_normals=to_h_dir(neck["normals"]),
        neck_albedo=neck["albedo"].astype(np.float32), neck_weight=neck["weight"].astype(np.float32),
        landmarks={k: to_h(v) for k, v in landmarks.items()},
        cache={"neck_spacing": neck["spacing"] * i.scale},
        radius_grid=radius_grid * np.float32(i.scale),
        face_index=face_index,
        spacing=(cloud["spacing"] * i.scale).astype(np.float32),
    )


def _grid_lookup(grid: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Bilinear lookup in a 2-degree (latitude from -90, longitude from -180) grid."""
    gh, gw = grid.shape
    x = (np.degrees(theta) + 180.0) / 2.0
    y = np.clip((np.degrees(phi) + 90.0) / 2.0, 0, gh - 1.001)
    x0 = np.floor(x).astype(np.int64)
    y0 = np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    x0 %= gw
    x1 = (x0 + 1) % gw
    y1 = np.minimum(y0 + 1, gh - 1)
    return ((grid[y0, x0] * (1 - fx) + grid[y0, x1] * fx) * (1 - fy)
            + (grid[y1, x0] * (1 - fx) + grid[y1, x1] * fx) * fy)


def _grid_normals(pts: np.ndarray) -> np.ndarray:
    """Outward normals of a latitude x longitude grid of points (longitude wraps round)."""
    dt = np.roll(pts, -1, axis=1) - np.roll(pts, 1, axis=1)
    dp = np.empty_like(pts)
    dp[1:-1] = pts[2:] - pts[:-2]
    dp[0] = pts[1] - pts[0]
    dp[-1] = pts[-1] - pts[-2]
    n = np.cross(dt, dp)
    n = normalize(n)
    # make them point outwards
    flip = (n * pts).sum(-1) < 0
    n[flip] *= -1
    return n


def _hair(b: _Builder, X, Y, Z, T, P) -> tuple[np.ndarray, np.ndarray]:
    """Hair coverage in [0, 1] and the hair layer's thickness (mm) over the base surface."""
    i = b.i
    if i.hair_style == "bald":
        return np.zeros_like(X), np.zeros_like(X)
    at = np.degrees(np.abs(T))
    # hairline height as a function of longitude: front, temples, above the ears, the nape
    front_y = b.hair_y - i.fringe * (b.hair_y - b.brow_y - 10.0)
    temple_y = b.hair_y - 6.0 + 14.0 * i.hair_recession
    long_sides = i.hair_style in ("medium", "long", "curly")
    ear_y = (b.eye_y - 45.0) if long_sides else (b.eye_y + 16.0)
    nape_y = -62.0 if i.hair_style != "buzz" else -52.0
    knots_t = np.array([0.0, 30.0, 55.0, 72.0, 82.0, 110.0, 140.0, 180.0])
    knots_y = np.array([front_y, front_y + 3.0 + 10 * i.hair_recession, temple_y,
                        b.eye_y - 8.0 if not long_sides else ear_y, ear_y, ear_y,
                        nape_y + 10.0, nape_y])
    line = np.interp(at, knots_t, knots_y)
    if i.hair_recession > 0.3:  # thinning crown
        crown = _gauss(X, 35.0, Z + 25.0, 35.0) * (Y > 60) * (i.hair_recession - 0.3) * 1.4
    else:
        crown = 0.0
    mask = smoothstep(Y - line, -1.5, 2.5) * np.clip(1.0 - crown, 0.0, 1.0)
    # the layer is thinner at the hairline, fuller over the crown
    thick = i.hair_thickness * smoothstep(Y - line, -1.0, 22.0)
    if i.hair_style == "curly":
        thick = thick * (0.85 + 0.3 * np.sin(T * 23.0) * np.sin(P * 19.0))
    # keep the layer off the face proper (the fringe lies flat on the forehead)
    thick = thick * (1.0 - 0.65 * smoothstep(Z, 30.0, 50.0) * smoothstep(b.hair_y - Y, -6.0, 6.0))
    return mask, mask * thick


def _skin_colour(i: Identity) -> np.ndarray:
    """Linear-RGB skin albedo over the whole human range (tone 0 very light .. 1 very dark)."""
    light = np.log(np.array([0.80, 0.56, 0.45]))
    mid = np.log(np.array([0.50, 0.29, 0.17]))
    dark = np.log(np.array([0.10, 0.048, 0.028]))
    t = i.skin_tone
    c = np.where(t < 0.5, light + (mid - light) * (t / 0.5), mid + (dark - mid) * ((t - 0.5) / 0.5))
    c = np.exp(c) * np.array([1.0 + 0.04 * i.skin_hue, 1.0 + 0.03 * i.skin_hue, 1.0 - 0.12 * i.skin_hue])
    return c


def _appearance(b: _Builder, X, Y, Z, T, P, hair_mask, feats):
    i = b.i
    g = b.g
    sh = X.shape
    skin = _skin_colour(i)
    # low-frequency blotches and fine pores on the skin
    u = (T * 95.0 * 2.0)  # ~ mm along the surface
    v = (P * 95.0 * 2.0)
    blot = (np.sin(u * 0.11 + 1.3) * np.sin(v * 0.13 + 0.4) + np.sin(u * 0.053 - v * 0.047 + 2.0)) * 0.5
    pores = g.normal(0.0, 1.0, sh)
    alb = skin * (1.0 + 0.05 * blot[..., None] + 0.035 * pores[..., None])
    front = smoothstep(Z, 15.0, 55.0)
    ax = np.abs(X)
    # redness on the cheeks, the nose and the ears; darker round the eyes
    red = i.skin_redness * (_gauss(ax - 40.0, 14.0, Y - b.eye_y + 28.0, 12.0) * front
                            + 0.6 * _gauss(X, 8.0, Y - b.tip_y, 8.0) * front)
    alb = alb * (1.0 + red[..., None] * np.array([0.12, -0.12, -0.1]))
    under_eye = _gauss(ax - i.eye_spacing, 12.0, Y - b.eye_y + 8.0, 5.0) * front
    alb = alb * (1.0 - 0.18 * under_eye[..., None])
    if i.freckles > 0:
        fr = (g.random(sh) < 0.05 * i.freckles) * _gauss(ax - 30.0, 25.0, Y - b.eye_y + 20.0, 18.0)
        alb = alb * (1.0 - 0.35 * fr[..., None])
    spec = np.full(sh, 0.05) + 0.05 * (_gauss(X, 12.0, Y - b.tip_y, 12.0) + _gauss(X, 25.0, Y - b.brow_y - 20.0, 15.0)) * front
    gloss = np.full(sh, 18.0)
    ir = np.full(sh, 0.6 - 0.12 * i.skin_tone)
    mat = np.full(sh, SKIN, np.uint8)
    # nostrils
    nostril = _gauss(ax - 0.16 * i.nose_width, 3.2, Y - b.sn_y - 1.5, 2.0) * front
    alb = alb * (1.0 - 0.85 * nostril[..., None])
    # lips
    mw = 0.5 * i.mouth_width
    my = Y - b.mouth_y
    xr = np.clip(ax / mw, 0, 1)
    upper_h = (4.0 + 0.5 * i.upper_lip) * np.clip(1 - xr ** 2, 0, 1) ** 0.8 + 1.0 * _gauss(ax - 4.5, 2.5)
    lower_h = (5.0 + 0.6 * i.lower_lip) * np.clip(1 - xr ** 2, 0, 1) ** 0.7
    lips = np.where(my >= 0, smoothstep(upper_h - my, -0.8, 0.8), smoothstep(lower_h + my, -0.8, 0.8)) \
        * (ax < mw + 1.0) * front
    lip_col = skin * np.array([0.85, 0.52, 0.52]) * (1.0 - 0.25 * i.skin_tone)
    lip_col = skin + (lip_col - skin) * (0.35 + 0.55 * i.lip_colour)
    alb = alb + (lip_col - alb) * lips[..., None]
    spec = spec + 0.12 * lips
    gloss = np.where(lips > 0.5, 30.0, gloss)
    mat = np.where(lips > 0.5, LIP, mat)
    mouth_line = _gauss(my, 0.9) * (ax < mw) * front
    alb = alb * (1.0 - 0.6 * mouth_line[..., None])
    # eyebrows
    hc = np.asarray(i.hair_colour)
    brow_c = hc * 0.8 if hc.mean() < 0.3 else hc * 0.55
    bx = ax - i.eye_spacing + 2.0
    arch = b.brow_y + 1.0 + 3.5 * np.exp(-0.5 * (bx / 12.0) ** 2) - 0.04 * np.clip(bx, 0, None) ** 1.5
    taper = np.clip(1.0 - np.clip(bx - 10.0, 0, None) / 14.0, 0.25, 1.0)
    in_brow = smoothstep(0.5 * i.eyebrow_thickness * taper - np.abs(Y - arch), -0.8, 0.8) \
        * smoothstep(bx, -21.0, -17.0) * smoothstep(-bx, -26.0, -22.0)
    strands = 0.55 + 0.45 * np.sin(u * 1.7 + v * 0.6) ** 2
    bdens = np.clip(1.3 * i.eyebrow_density * strands, 0.0, 1.0) * in_brow * front
    alb = alb + (brow_c - alb) * bdens[..., None]
    ir = ir - 0.25 * bdens
    mat = np.where(bdens > 0.5, BROW, mat)
    # beard
    if i.beard_style != "none":
        cheek_line = b.mouth_y + 12.0 + 0.45 * np.clip(ax - 22.0, 0, None)
        region = (Y < cheek_line) & (Z > -30)
        lip_free = lips < 0.2
        if i.beard_style == "goatee":
            region &= (ax < 24.0) | ((Y > b.mouth_y) & (ax < mw + 6.0))
        if i.beard_style == "stubble":
            dens = 0.45 * i.beard_density
        else:
            dens = i.beard_density
        bd = region * lip_free * dens * (0.6 + 0.4 * g.random(sh))
        bd = bd * smoothstep(cheek_line - Y, 0.0, 6.0)
        alb = alb + (brow_c * 0.9 - alb) * bd[..., None]
        ir = ir - 0.3 * bd
        mat = np.where(bd > 0.5, HAIR, mat)
    # hair
    if i.hair_style != "bald":
        strand = 0.7 + 0.3 * np.sin(T * 260.0 + 3.0 * np.sin(P * 17.0)) * np.sin(T * 71.0 + P * 9.0)
        hair_alb = hc[None, None, :] * (strand[..., None] * (1.0 + 0.25 * g.normal(0, 1, sh))[..., None])
        hm = hair_mask * (0.55 if i.hair_style == "buzz" else 1.0)
        alb = alb + (hair_alb - alb) * hm[..., None]
        spec = spec + (0.07 - spec) * hm
        gloss = np.where(hm > 0.5, 6.0, gloss)
        hair_ir = 0.12 + 0.5 * float(np.mean(hc))
        ir = ir + (hair_ir - ir) * hm
        mat = np.where(hm > 0.5, HAIR, mat)
    # inner ears a little darker
    ear = feats["ears"]
    alb = alb * (1.0 - 0.25 * smoothstep(ear, 3.0, 10.0) * (1.0 - hair_mask))[..., None]
    return np.clip(alb, 0.002, 0.95), spec, gloss, np.clip(ir, 0.03, 1.0), mat


def _eye_data(b: _Builder, X, Y, Z, alb, opening: np.ndarray | None = None):
    """The eye openings' points (the almond round each eye, or a scan's visible eyeballs
    ``opening``), where each lies between the lids and relative to its eye's centre."""
    i = b.i
    sel = []
    q_all, xy_all = [], []
    for side in (-1.0, 1.0):
        cx = side * i.eye_spacing
        dx = X - cx
        dy = Y - b.eye_y - side * np.tan(np.radians(i.eye_tilt)) * (np.abs(X) - i.eye_spacing)
        half_w = 14.5
        xr = np.clip(dx / half_w, -1, 1)
        # almond: the inner corner (towards the nose) sits a little lower
        inner = -side * xr  # +1 at the inner corner
        top = 5.2 * (1 - xr ** 2) ** 0.7 + 0.8 * inner
        bot = -3.8 * (1 - xr ** 2) ** 0.9 + 0.8 * inner
        if opening is None:
            inside = (np.abs(dx) < half_w) & (dy < top + 1.5) & (dy > bot) & (Z > 30)
        else:
            inside = opening & (np.abs(dx) < half_w + 6.0)
        idx = np.flatnonzero(inside)
        q = (top.ravel()[idx] - dy.ravel()[idx]) / np.maximum(top.ravel()[idx] - bot.ravel()[idx], 0.5)
        sel.append(idx)
        q_all.append(q)
        xy_all.append(np.stack([dx.ravel()[idx], dy.ravel()[idx]], axis=1))
    idx = np.concatenate(sel)
    q = np.concatenate(q_all)
    xy = np.concatenate(xy_all)
    lid = alb[idx] * 0.9
    sclera = np.array([0.62, 0.55, 0.52]) * (1.0 - 0.3 * np.clip(np.abs(xy[:, 0]) / 14.0, 0, 1) ** 2)[:, None]
    return {"index": idx, "q": np.clip(q, -0.5, 1.5), "xy": xy, "lid": lid, "open": sclera}


def _shadow_sh(pts: np.ndarray, nrm: np.ndarray, radius_grid: np.ndarray) -> np.ndarray:
    """Fit, per point, visibility(l) ~ c0 + c . l over directions l of the normal's hemisphere,
    by marching rays through the star-shaped surface ``radius_grid`` (2-degree grid)."""
    n_pts = len(pts)
    step = 5
    sub = np.arange(0, n_pts, step)
    p = pts[sub]
    nn = nrm[sub]
    # 26 directions spread over the sphere
    k = np.arange(20) + 0.5
    zz = 1 - 2 * k / 20
    rr = np.sqrt(1 - zz ** 2)
    aa = np.pi * (1 + 5 ** 0.5) * k
    dirs = np.stack([rr * np.cos(aa), rr * np.sin(aa), zz], axis=1)
    dist = np.array([3.0, 7.0, 13.0, 22.0, 36.0, 60.0])
    gh, gw = radius_grid.shape
    vis = np.ones((len(sub), len(dirs)), np.float32)
    origin = p + 1.5 * nn
    for j, d in enumerate(dirs):
        occl = np.zeros(len(sub), bool)
        for s in dist:
            q = origin + s * d
            rq = np.linalg.norm(q, axis=1)
            th = np.arctan2(q[:, 0], q[:, 2])
            ph = np.arcsin(np.clip(q[:, 1] / np.maximum(rq, 1e-6), -1, 1))
            col = ((np.degrees(th) + 180.0) / 2.0).astype(np.int64) % gw
            row = np.clip(((np.degrees(ph) + 90.0) / 2.0 + 0.5).astype(np.int64), 0, gh - 1)
            occl |= rq < radius_grid[row, col] - 1.0
        vis[:, j] = ~occl
    # weight directions by how much they matter for diffuse light: the normal's hemisphere
    w = np.clip(nn @ dirs.T, 0.0, None)  # (M, 26)
    # least squares per point of vis ~ c0 + c.d over the weighted directions
    A = np.concatenate([np.ones((len(dirs), 1)), dirs], axis=1)  # (26, 4)
    ata = np.einsum("mk,ki,kj->mij", w + 1e-3, A, A)
    atb = np.einsum("mk,ki,mk->mi", w + 1e-3, A, vis)
    coef = np.linalg.solve(ata + 1e-3 * np.eye(4), atb[..., None])[..., 0]
    out = np.empty((n_pts, 4), np.float32)
    # nearest fitted sample for the points in between (they are neighbours along the grid)
    nearest = np.minimum(np.arange(n_pts) // step, len(sub) - 1)
    out[:] = coef[nearest]
    return out


def _jaw_displacement(b: _Builder, p: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Displacement of model points when the jaw opens fully (rotation about the TMJ axis)."""
    ang = np.radians(13.0)
    pivot = np.array([0.0, b.eye_y - 22.0, -8.0])
    q = p - pivot
    c, s = np.cos(ang), np.sin(ang)
    # rotate about X so the chin swings down and slightly back
    y2 = q[:, 1] * c - q[:, 2] * s
    z2 = q[:, 1] * s + q[:, 2] * c
    d = np.stack([np.zeros(len(p)), y2 - q[:, 1], z2 - q[:, 2]], axis=1)
    return d * weight[:, None]


def _blendshapes(b: _Builder, X, Y, Z, pts) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    i = b.i
    ax = np.abs(X)
    mw = 0.5 * i.mouth_width
    front = Z > 0
    # jaw: below the mouth line; a clean cut between the lips, a soft stretch beyond the corners
    soft = 0.8 + 1.6 * np.clip(ax - mw + 2.0, 0, None)
    below = smoothstep(b.mouth_y - Y, -soft, soft)
    reach = smoothstep(Y, b.eye_y - 10.0, b.mouth_y - 4.0)  # the cheeks above stretch less
    w = np.where(ax < mw - 1.0, (Y < b.mouth_y).astype(float), below) * reach
    w = w * smoothstep(Z, -40.0, 10.0) * (Y > b.chin_y - 60.0)
    idx = np.flatnonzero(w > 0.01)
    jaw = _jaw_displacement(b, pts[idx], w[idx])
    # smile: corners up and back, cheeks up and out
    corner = _gauss(ax - mw, 9.0, Y - b.mouth_y, 8.0) * front
    cheek = _gauss(ax - 34.0, 14.0, Y - b.mouth_y - 22.0, 12.0) * front
    sdisp = np.zeros((len(X), 3))
    sdisp[:, 0] = np.sign(X) * (3.5 * corner + 1.0 * cheek)
    sdisp[:, 1] = 5.0 * corner + 2.5 * cheek
    sdisp[:, 2] = -2.5 * corner + 2.5 * cheek
    mouth_region = _gauss(X, mw, Y - b.mouth_y, 6.0) * front
    sdisp[:, 0] += 0.08 * X * mouth_region
    sidx = np.flatnonzero(np.abs(sdisp).sum(1) > 0.02)
    # brows up
    bw = _gauss(ax - i.eye_spacing, 20.0, Y - b.brow_y - 4.0, 9.0) * front
    bidx = np.flatnonzero(bw > 0.02)
    bd = np.zeros((len(bidx), 3))
    bd[:, 1] = 4.0 * bw[bidx]
    return {"jaw": (idx, jaw), "smile": (sidx, sdisp[sidx]), "brows": (bidx, bd)}


def _scan_blendshapes(hits: SphericalHits, scan: ScanShape, keep: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The scan's expression channels at the kept grid points (moves under 0.02 mm dropped)."""
    out = {}
    for name, disp in scan.channels.items():
        d = hits.interpolate(disp)[keep]
        idx = np.flatnonzero(np.abs(d).sum(1) > 0.02)
        out[name] = (idx, d[idx])
    return out


def _texture_albedo(hits: SphericalHits, scan: ScanShape, alb: np.ndarray) -> np.ndarray:
    """A textured scan's albedo on the grid: its texture coordinates interpolated at each hit,
    the colour map read bilinearly there; grid points without a hit (holes, below a cut) take
    the median colour of those with one (``alb`` only where nothing was hit at all)."""
    tex = scan.texture
    th, tw = tex.shape[:2]
    uv = hits.interpolate(scan.uv.astype(np.float64))
    x = np.clip(uv[..., 0] * tw - 0.5, 0.0, tw - 1.0)
    y = np.clip((1.0 - uv[..., 1]) * th - 0.5, 0.0, th - 1.0)
    x0 = np.minimum(np.floor(x).astype(np.int64), tw - 2)
    y0 = np.minimum(np.floor(y).astype(np.int64), th - 2)
    fx, fy = (x - x0)[..., None], (y - y0)[..., None]
    col = ((tex[y0, x0] * (1 - fx) + tex[y0, x0 + 1] * fx) * (1 - fy)
           + (tex[y0 + 1, x0] * (1 - fx) + tex[y0 + 1, x0 + 1] * fx) * fy)
    hit = hits.triangle >= 0
    fill = np.median(col[hit], axis=0) if hit.any() else alb
    return np.clip(np.where(hit[..., None], col, fill), 0.002, 0.95)


def scan_identity(ident: Identity, scan: ScanShape) -> Identity:
    """``ident``'s appearance with the shape measures the appearance uses taken from the scan
    (eye spacing, mouth and nose width) and no extra scaling: size comes from the scan."""
    m = scan.measures_mm
    return replace(ident, eye_spacing=m["eye_spacing"], mouth_width=m["mouth_width"], nose_width=m["nose_width"],
                   eye_height=float(scan.landmarks_mm["eyes"][1]), eye_tilt=0.0, scale=1.0)


def _surface_radius(radius_grid: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Radius of the outer surface along unit directions d (model coordinates)."""
    gh, gw = radius_grid.shape
    th = np.degrees(np.arctan2(d[:, 0], d[:, 2]))
    ph = np.degrees(np.arcsin(np.clip(d[:, 1], -1, 1)))
    col = (((th + 180.0) / 2.0 + 0.5).astype(np.int64)) % gw
    row = np.clip(((ph + 90.0) / 2.0 + 0.5).astype(np.int64), 0, gh - 1)
    return radius_grid[row, col]


def _part(points, normals, albedo, specular, gloss, ir, material, **extra):
    n = len(points)
    out = {
        "points": np.asarray(points, np.float64), "normals": normalize(np.asarray(normals, np.float64)),
        "albedo": np.broadcast_to(np.asarray(albedo, np.float64), (n, 3)).copy(),
        "specular": np.broadcast_to(np.asarray(specular, np.float64), (n,)).copy(),
        "gloss": np.broadcast_to(np.asarray(gloss, np.float64), (n,)).copy(),
        "ir": np.broadcast_to(np.asarray(ir, np.float64), (n,)).copy(),
        "material": np.full(n, material, np.uint8),
    }
    out.update(extra)
    return out


def _mouth_interior(b: _Builder, pts, X, Y) -> dict:
    """A dark cavity behind the lips with upper and lower teeth, seen when the jaw opens."""
    i = b.i
    mw = 0.5 * i.mouth_width - 2.0
    sel = (np.abs(X) < 3) & (np.abs(Y - b.mouth_y) < 3) & (pts[:, 2] > 0)
    z0 = float(pts[sel, 2].max()) if sel.any() else 90.0
    xs = np.arange(-mw, mw + 0.01, 0.9)
    ys = np.arange(b.mouth_y - 24.0, b.mouth_y + 4.0, 0.9)
    GX, GY = np.meshgrid(xs, ys)
    GZ = z0 - 11.0 - GX ** 2 / 45.0 - 0.6 * np.clip(b.mouth_y - 6.0 - GY, 0.0, None)
    p = np.stack([GX, GY, GZ], axis=-1).reshape(-1, 3)
    n = np.tile([0.0, 0.0, 1.0], (len(p), 1))
    my = p[:, 1] - b.mouth_y
    alb = np.tile([0.09, 0.02, 0.02], (len(p), 1))
    teeth_up = (my > -7.0) & (my < 2.0) & (np.abs(p[:, 0]) < mw - 2)
    teeth_lo = (my < -16.0) & (my > -22.0) & (np.abs(p[:, 0]) < mw - 4)
    tongue = my < -22.0
    alb[teeth_up | teeth_lo] = [0.55, 0.5, 0.42]
    alb[tongue] = [0.25, 0.06, 0.06]
    alb[(my > -16.0) & (my < -7.0)] = [0.03, 0.008, 0.008]
    mat = np.where(teeth_up | teeth_lo, TEETH, INTERIOR)
    part = _part(p, n, alb, 0.1, 25.0, 0.5, INTERIOR, lower=np.flatnonzero(my < -12.0), spacing=0.9)
    part["material"] = mat.astype(np.uint8)
    part["shadow"] = np.tile([[0.35, 0.0, 0.0, 0.0]], (len(p), 1))
    return part


def _long_hair(b: _Builder, radius_grid: np.ndarray) -> dict:
    """Hair falling from the sides and the back down to the shoulders."""
    i = b.i
    g = rng("long-hair", i.subject, int(i.hair_thickness * 100))
    length = 150.0 + 120.0 * g.random()
    opening = np.radians(50.0 + 12.0 * g.random())
    ts = np.radians(np.arange(-180.0, 180.0, 1.1))
    ts = ts[np.abs(ts) > opening]
    y_top = b.eye_y + 30.0
    ys = np.arange(y_top, b.eye_y - length, -1.3)
    T, Yg = np.meshgrid(ts, ys)
    # hair lies on the head down to its widest point, then hangs straight down
    r_est = 95.0
    ph = np.arcsin(np.clip(Yg / r_est, -0.95, 0.95))
    d = np.stack([np.cos(ph) * np.sin(T), np.sin(ph), np.cos(ph) * np.cos(T)], axis=-1).reshape(-1, 3)
    r_s = _surface_radius(radius_grid, d).reshape(T.shape) * np.cos(ph)  # horizontal distance
    r_s = np.maximum.accumulate(r_s, axis=0)
    drop = np.clip((y_top - Yg) / length, 0, 1)
    r = r_s + 3.0 + 0.4 * i.hair_thickness + 14.0 * drop ** 1.5 + 3.0 * np.sin(T * 9.0) * drop
    pts = np.stack([np.sin(T) * r, Yg, np.cos(T) * r], axis=-1).reshape(-1, 3)
    nrm = np.stack([np.sin(T), np.full_like(T, 0.15), np.cos(T)], axis=-1).reshape(-1, 3)
    hc = np.asarray(i.hair_colour)
    strand = 0.7 + 0.3 * np.sin(T * 300.0 + Yg * 0.05) * np.sin(T * 83.0)
    alb = hc[None, :] * strand.reshape(-1, 1) * (1.0 + 0.2 * g.normal(0, 1, (len(pts), 1)))
    # ragged ends
    keep = (Yg > b.eye_y - length + 25.0 * g.random(T.shape)).ravel()
    part = _part(pts[keep], nrm[keep], alb[keep], 0.07, 6.0, 0.12 + 0.5 * float(hc.mean()), HAIR,
                 spacing=float(np.radians(1.1) * r.max()))
    part["shadow"] = np.tile([[0.6, 0.0, 0.25, 0.0]], (int(keep.sum()), 1))
    return part


def _glasses(b: _Builder, radius_grid: np.ndarray) -> dict:
    """Spectacle frames (rims, bridge and temples); the lenses are left clear."""
    i = b.i
    g = rng("glasses", i.subject)
    s = i.glasses_size
    lw, lh = 25.0 * s, (16.0 + 4.0 * g.random()) * s
    thick = 1.5 + 2.0 * g.random()
    d_front = np.array([0.0, 0.0, 1.0])
    z_eye = float(_surface_radius(radius_grid, normalize(np.array([[i.eye_spacing, b.eye_y, 90.0]])))[0]) * np.cos(
        np.arctan2(i.eye_spacing, 90.0))
    z = z_eye + 13.0
    pts, nrm = [], []
    ang = np.linspace(0, 2 * np.pi, 240, endpoint=False)
    for side in (-1.0, 1.0):
        cx = side * (i.eye_spacing + 1.0)
        for w in np.arange(0.0, thick, 0.6):
            # a rounded rectangle as a superellipse
            ca, sa = np.cos(ang), np.sin(ang)
            rx = (lw + w) * np.sign(ca) * np.abs(ca) ** 0.6
            ry = (lh + w) * np.sign(sa) * np.abs(sa) ** 0.6
            pts.append(np.stack([cx + rx, b.eye_y + ry - 1.0, np.full_like(rx, z - 0.02 * rx ** 2 * side * 0)], 1))
            nrm.append(np.tile(d_front, (len(rx), 1)))
        # temple arm back to the ear
        xs = np.full(60, side * (i.eye_spacing + lw + 1.0))
        zs = np.linspace(z, -10.0, 60)
        for dy in np.arange(0.0, 3.0, 0.7):
            rad = _surface_radius(radius_grid, normalize(np.stack([xs, np.full(60, b.eye_y), zs], 1)))
            xx = side * np.maximum(np.abs(xs), np.sqrt(np.clip(rad ** 2 - zs ** 2, 0, None)) + 4.0)
            pts.append(np.stack([xx, np.full(60, b.eye_y + 2.0 - dy), zs], 1))
            nrm.append(np.tile([side, 0.0, 0.0], (60, 1)))
    # bridge
    xb = np.linspace(-(i.eye_spacing + 1.0 - lw), i.eye_spacing + 1.0 - lw, 30)
    for dy in np.arange(0.0, 2.5, 0.6):
        pts.append(np.stack([xb, b.eye_y + 5.0 + dy + 0.01 * xb ** 2, np.full(30, z + 1.0)], 1))
        nrm.append(np.tile(d_front, (30, 1)))
    p = np.concatenate(pts)
    n = np.concatenate(nrm)
    return _part(p, n, np.asarray(i.glasses_colour), 0.12, 40.0, 0.25, GLASSES, spacing=0.8)


def _neck(b: _Builder, radius_grid: np.ndarray) -> dict:
    """An elliptic cylinder from under the skull down into the torso."""
    i = b.i
    rx, rz = i.neck_width, i.neck_width * 0.92
    ts = np.radians(np.arange(-180.0, 180.0, 2.0))
    ys = np.arange(b.chin_y + 35.0, b.chin_y - 115.0, -2.0)
    T, Yg = np.meshgrid(ts, ys)
    cz = -12.0
    # the neck flares towards the shoulders
    flare = 1.0 + 0.28 * smoothstep(b.chin_y - 60.0 - Yg, 0.0, 50.0)
    pts = np.stack([rx * flare * np.sin(T), Yg, cz + rz * flare * np.cos(T)], axis=-1).reshape(-1, 3)
    nrm = np.stack([np.sin(T) / rx, np.zeros_like(T), np.cos(T) / rz], axis=-1).reshape(-1, 3)
    skin = _skin_colour(i)
    alb = np.tile(skin * 0.95, (len(pts), 1))
    # a little shade under the jaw
    alb *= (1.0 - 0.25 * smoothstep(pts[:, 1], b.chin_y - 40.0, b.chin_y + 5.0))[:, None]
    if i.beard_style in ("full",):
        under = (pts[:, 1] > b.chin_y - 18) & (pts[:, 2] > cz)
        alb[under] = alb[under] + (np.asarray(i.hair_colour) * 0.8 - alb[under]) * i.beard_density
    weight = smoothstep(pts[:, 1], b.chin_y - 110.0, b.chin_y + 5.0)
    return {"points": pts, "normals": normalize(nrm), "albedo": alb, "weight": weight,
            "spacing": float(max(np.radians(2.0) * rx, 2.0))}
