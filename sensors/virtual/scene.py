"""Scenes and sequences: backgrounds with clutter, the seated body, lighting and motion plans.

A stream is cut into sequences of a fixed number of frames. Sequence ``k`` is a pure function of
(seed, k, options): who sits there, which room, the lights, the camera's colour response, and
smooth keyframed trajectories for the head pose, expressions, gaze and occluders. A frame is
then a pure function of (sequence, time in the sequence), so any frame can be rendered alone.

Coordinates: the depth camera's (mm, x right, y down, z forward).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.geometry import rot_y, rotation_from_euler_deg
from sensors.virtual._util import fbm_2d, normalize, rng, smoothstep
from sensors.virtual.people import HeadModel
from sensors.virtual.cameras import FPS
from sensors.virtual.shapes import PointSet, sdf_points, smooth_max

# --------------------------------------------------------------------------------------------
# sequence plans
# --------------------------------------------------------------------------------------------

OCCLUDER_KINDS = ("hand", "bottle", "phone")


@dataclass(frozen=True)
class Lighting:
    """Lights of one sequence, in the depth camera's frame; colours include exposure and white
    balance (linear RGB)."""

    key_dir: np.ndarray      # unit vector towards the key light
    key_colour: np.ndarray
    fill_dir: np.ndarray
    fill_colour: np.ndarray
    ambient: np.ndarray


@dataclass(frozen=True)
class CameraLook:
    """The colour camera's rendition in one sequence."""

    blur_sigma_px: float
    jpeg_quality: int
    noise_level: int          # index into the precomputed colour-noise tables
    gain: np.ndarray          # exposure x white balance, linear RGB multipliers


@dataclass(frozen=True)
class Event:
    kind: str
    start_s: float
    end_s: float
    variant: int


@dataclass(frozen=True)
class SequencePlan:
    """Everything fixed for one sequence."""

    index: int
    seed: int
    subject: int
    kind: str                 # "calm" or "free"
    room: str                 # "office" or "car"
    room_seed: int
    head_anchor_mm: np.ndarray  # head centre at rest, depth camera
    torso_yaw_deg: float
    lighting: Lighting
    camera: CameraLook
    pose_keys_t: np.ndarray   # keyframe times (s)
    pose_keys: np.ndarray     # (K, 6): yaw, pitch, roll (deg), dx, dy, dz (mm)
    jitter: np.ndarray        # (3, 3) amplitude, frequency, phase of small pose tremor
    blinks_s: np.ndarray
    talk: tuple[Event, ...]
    smiles: tuple[Event, ...]
    brows: tuple[Event, ...]
    gaze_keys_t: np.ndarray
    gaze_keys: np.ndarray     # (K, 2) mm
    occluders: tuple[Event, ...]
    cap: bool
    scarf: bool
    frames: int


def plan_sequence(seed: int, index: int, subject: int, kind: str, distance_m: tuple[float, float],
                  occluders: str, frames: int, room: str = "mixed") -> SequencePlan:
    """The plan of sequence ``index`` of a stream (a pure function of the arguments).

    ``occluders``: ``"off"``; ``"on"``, now and then (2-12 s apart, the source's default);
    ``"often"``, every sequence starts with one and they come 0.5-2 s apart (occluded frames for
    training)."""
    g = rng("sequence", seed, index)
    dur = frames / FPS
    z = 1000.0 * g.uniform(distance_m[0], distance_m[1])
    # head placement: near the image centre, a little above it
    x = g.uniform(-0.1, 0.1) * z
    y = g.uniform(-0.12, 0.03) * z
    room_draw = "car" if g.random() < 0.45 else "office"
    room = room_draw if room == "mixed" else room
    # lights: a key light from the front half-space, a weaker fill, ambient; colours by temperature
    az = np.radians(g.uniform(-75, 75))
    el = np.radians(g.uniform(-10, 55))
    key_dir = normalize(np.array([np.sin(az) * np.cos(el), -np.sin(el), -np.cos(az) * np.cos(el)]))
    az2 = az + np.radians(g.choice([-1, 1]) * g.uniform(60, 140))
    fill_dir = normalize(np.array([np.sin(az2), -g.uniform(-0.2, 0.6), -abs(np.cos(az2)) - 0.2]))
    temp = g.uniform(-1, 1)  # -1 warm .. +1 cool
    tint = np.array([1.0 - 0.18 * temp, 1.0, 1.0 + 0.25 * temp])
    key = g.uniform(0.7, 1.6) * tint
    fill = g.uniform(0.08, 0.35) * np.array([1.0 + 0.1 * g.normal(), 1.0, 1.0 + 0.15 * g.normal()])
    amb = g.uniform(0.15, 0.4) * np.array([1.0 + 0.05 * g.normal(), 1.0, 1.0 + 0.08 * g.normal()])
    exposure = g.uniform(0.75, 1.3)
    wb = np.array([1.0 + 0.08 * g.normal(), 1.0, 1.0 + 0.08 * g.normal()])
    gain = exposure * wb
    lighting = Lighting(key_dir, key * gain, fill_dir, fill * gain, amb * gain)
    camera = CameraLook(blur_sigma_px=float(g.uniform(0.5, 1.4)), jpeg_quality=int(g.integers(62, 95)),
                        noise_level=int(g.integers(0, 3)), gain=gain)
    # pose keyframes
    if kind == "calm":
        spacing = (1.4, 3.5)
        lim = np.array([22.0, 12.0, 8.0, 25.0, 15.0, 25.0])
    else:
        spacing = (0.6, 1.8)
        lim = np.array([75.0, 40.0, 30.0, 60.0, 35.0, 60.0])
    times = [0.0]
    while times[-1] < dur + 2.0:
        times.append(times[-1] + g.uniform(*spacing))
    keys = []
    for k in range(len(times)):
        if kind == "free" and g.random() < 0.25:
            v = np.zeros(6)  # back to looking ahead now and then
            v[:3] = g.normal(0, 5, 3)
        else:
            u = g.uniform(-1, 1, 6)
            v = lim * np.sign(u) * np.abs(u) ** (0.8 if kind == "free" else 1.3)
        # extreme roll with extreme yaw is rare; keep the combination plausible
        v[2] *= 1.0 - 0.5 * min(abs(v[0]) / 75.0, 1.0)
        keys.append(v)
    jitter = np.stack([g.uniform(0.3, 1.5, 3), g.uniform(0.3, 1.2, 3), g.uniform(0, 2 * np.pi, 3)])
    # expressions
    blinks = np.cumsum(g.uniform(1.5, 6.0, int(dur / 1.5) + 2))
    talk, smiles, brows = [], [], []
    t = g.uniform(0, 3)
    while t < dur:
        span = g.uniform(1.0, 5.0)
        talk.append(Event("talk", t, t + span, int(g.integers(1 << 30))))
        t += span + g.uniform(1.0, 6.0)
    t = g.uniform(0, 5)
    while t < dur:
        span = g.uniform(1.0, 4.0)
        smiles.append(Event("smile", t, t + span, int(g.integers(1, 4))))
        t += span + g.uniform(2.0, 9.0)
    t = g.uniform(0, 6)
    while t < dur:
        span = g.uniform(0.4, 1.5)
        brows.append(Event("brows", t, t + span, 0))
        t += span + g.uniform(3.0, 12.0)
    gaze_t = np.cumsum(np.concatenate([[0.0], g.uniform(0.3, 2.0, int(dur / 0.3) + 2)]))
    gaze = g.normal(0, 1.6, (len(gaze_t), 2)) * np.array([1.0, 0.6])
    # occluders
    events = []
    cap = scarf = False
    if occluders != "off":
        often = occluders == "often"
        cap = bool(g.random() < (0.25 if often else 0.12))
        scarf = bool(g.random() < (0.25 if often else 0.12))
        t = g.uniform(0.0, 0.4) if often else g.uniform(0.5, 8.0)
        while t < dur:
            kind_o = str(g.choice(OCCLUDER_KINDS, p=[0.55, 0.2, 0.25]))
            span = g.uniform(1.5, 4.5) if kind_o != "phone" else g.uniform(3.0, 7.0)
            events.append(Event(kind_o, t, t + span, int(g.integers(0, 4))))
            t += span + (g.uniform(0.5, 2.0) if often else g.uniform(2.0, 12.0))
    return SequencePlan(
        index=index, seed=seed, subject=subject, kind=kind, room=room, room_seed=int(g.integers(1 << 31)),
        head_anchor_mm=np.array([x, y, z]), torso_yaw_deg=float(g.uniform(-10, 10)),
        lighting=lighting, camera=camera, pose_keys_t=np.array(times), pose_keys=np.array(keys),
        jitter=jitter, blinks_s=blinks, talk=tuple(talk), smiles=tuple(smiles), brows=tuple(brows),
        gaze_keys_t=gaze_t, gaze_keys=gaze, occluders=tuple(events), cap=cap, scarf=scarf, frames=frames,
    )


def _interp_smooth(t: float, kt: np.ndarray, kv: np.ndarray) -> np.ndarray:
    """Interpolation through keyframes with a smooth ease-in / ease-out between them."""
    j = int(np.clip(np.searchsorted(kt, t, side="right") - 1, 0, len(kt) - 2))
    a = (t - kt[j]) / max(kt[j + 1] - kt[j], 1e-6)
    a = float(np.clip(a, 0, 1))
    a = a * a * (3 - 2 * a)
    return kv[j] + (kv[j + 1] - kv[j]) * a


def _envelope(t: float, events, ramp: float = 0.25) -> tuple[float, Event | None]:
    for e in events:
        if e.start_s - ramp <= t <= e.end_s + ramp:
            w = min(smoothstep(t, e.start_s - ramp, e.start_s + ramp), smoothstep(-t, -e.end_s - ramp, -e.end_s + ramp))
            return float(w), e
    return 0.0, None


@dataclass(frozen=True)
class FrameState:
    """The animated state of one frame."""

    rotation: np.ndarray       # head axes -> depth camera
    centre_mm: np.ndarray      # skull centre, depth camera
    yaw_pitch_roll_deg: np.ndarray
    jaw: float
    smile: float
    brows: float
    blink: float
    gaze_mm: tuple[float, float]
    occluder: str | None
    occluder_variant: int
    occluder_amount: float     # 0 = out of view .. 1 = in place
    time_s: float


#: the head turns about a pivot low in the neck (head axes, mm; y down, z backwards)
PIVOT_H = np.array([0.0, 95.0, 25.0])


def frame_state(plan: SequencePlan, t: float) -> FrameState:
    k = _interp_smooth(t, plan.pose_keys_t, plan.pose_keys)
    jt = plan.jitter
    k = k.copy()
    k[:3] += jt[0] * np.sin(2 * np.pi * jt[1] * t + jt[2])
    yaw, pitch, roll = k[:3]
    rot = rotation_from_euler_deg(yaw, pitch, roll)
    anchor = plan.head_anchor_mm + k[3:]
    # rotation about the neck pivot: the skull centre moves as the head pitches and rolls
    centre = anchor + (PIVOT_H - rot @ PIVOT_H)
    # expressions
    talk_w, ev = _envelope(t, plan.talk, 0.15)
    jaw = 0.0
    if ev is not None:
        ph = (ev.variant % 1000) / 1000.0 * 6.28
        syll = 0.5 + 0.5 * np.sin(2 * np.pi * 4.2 * t + ph) * np.sin(2 * np.pi * 1.3 * t + 2 * ph)
        jaw = talk_w * float(np.clip(syll, 0, 1)) * (0.45 + 0.4 * ((ev.variant >> 10) % 7) / 6.0)
    smile_w, sev = _envelope(t, plan.smiles, 0.3)
    smile = smile_w * (0.5 + 0.25 * (sev.variant if sev else 0))
    if sev is not None and sev.variant == 3:
        jaw = max(jaw, 0.3 * smile_w)  # a laugh opens the mouth
    brows, _ = _envelope(t, plan.brows, 0.15)
    blink = 0.0
    j = np.searchsorted(plan.blinks_s, t)
    for b in plan.blinks_s[max(j - 1, 0): j + 1]:
        dt = t - b
        if -0.08 <= dt <= 0.22:
            blink = max(blink, float(1.0 - abs(dt - 0.04) / 0.18) if dt > -0.08 else 0.0)
    blink = float(np.clip(blink * 1.15, 0, 1))
    gaze = _interp_smooth(t, plan.gaze_keys_t, plan.gaze_keys)
    # occluders
    occ, oev = _envelope(t, plan.occluders, 0.5)
    return FrameState(
        rotation=rot, centre_mm=centre, yaw_pitch_roll_deg=np.array([yaw, pitch, roll]),
        jaw=float(jaw), smile=float(smile), brows=float(brows), blink=blink,
        gaze_mm=(float(gaze[0]), float(gaze[1])),
        occluder=oev.kind if oev is not None and occ > 0 else None,
        occluder_variant=oev.variant if oev is not None else 0, occluder_amount=float(occ), time_s=t,
    )


# --------------------------------------------------------------------------------------------
# rooms: analytic boxes, ray cast once per sequence
# --------------------------------------------------------------------------------------------

@dataclass
class Box:
    lo: np.ndarray
    hi: np.ndarray
    colour: np.ndarray
    texture: str = "plain"     # plain, wall, wood, fabric, books, poster, screen, window
    ir: float = 0.5
    no_depth: bool = False     # glass: the depth camera sees through to nothing
    tex_seed: int = 0


def _room_boxes(plan: SequencePlan) -> list[Box]:
    g = rng("room", plan.room_seed)
    hx, hy, hz = plan.head_anchor_mm
    boxes: list[Box] = []
    if plan.room == "none":
        return boxes

    def col(base, spread=0.15):
        return np.clip(np.asarray(base) * np.exp(g.normal(0, spread, 3)), 0.005, 0.9)

    if plan.room == "office":
        wall_z = hz + g.uniform(700, 2600)
        wall_c = col([[0.7, 0.66, 0.58], [0.55, 0.55, 0.55], [0.45, 0.5, 0.55], [0.6, 0.5, 0.4],
                      [0.35, 0.4, 0.35]][g.integers(5)], 0.08)
        boxes.append(Box(np.array([-6000, -4000, wall_z]), np.array([6000, 4000, wall_z + 100]), wall_c, "wall",
                         0.6, tex_seed=int(g.integers(1 << 30))))
        # a side wall at an angle-free offset, giving a depth gradient across the image
        side = g.choice([-1, 1])
        sx = hx + side * g.uniform(900, 1800)
        lo = np.array([sx if side > 0 else sx - 100, -4000, hz - 1500])
        boxes.append(Box(lo, lo + [100, 8000, wall_z - hz + 1600], wall_c * 0.85, "wall", 0.6,
                         tex_seed=int(g.integers(1 << 30))))
        # window with daylight (no depth through the glass)
        if g.random() < 0.6:
            wx = hx + g.uniform(-1500, 1500)
            wy = hy + g.uniform(-900, -300)
            boxes.append(Box(np.array([wx - 500, wy - 450, wall_z - 20]), np.array([wx + 500, wy + 450, wall_z]),
                             col([0.9, 0.92, 0.95], 0.05), "window", 0.0, no_depth=True,
                             tex_seed=int(g.integers(1 << 30))))
            boxes.append(Box(np.array([wx - 540, wy - 490, wall_z - 10]), np.array([wx + 540, wy + 490, wall_z]),
                             col([0.8, 0.8, 0.8], 0.05), "plain", 0.6))
        # shelves with books
        for _ in range(g.integers(1, 3)):
            bx = hx + g.uniform(-1800, 1800)
            by = hy + g.uniform(-700, 200)
            depth = 300.0
            width = g.uniform(600, 1200)
            wood = col([0.35, 0.22, 0.12], 0.3)
            for level in range(int(g.integers(2, 5))):
                y = by + level * 350
                boxes.append(Box(np.array([bx, y, wall_z - depth]), np.array([bx + width, y + 25, wall_z]), wood,
                                 "wood", 0.5, tex_seed=int(g.integers(1 << 30))))
                x = bx + 10
                while x < bx + width - 40:
                    w = g.uniform(18, 60)
                    h = g.uniform(180, 320)
                    if g.random() < 0.15:
                        x += w * 2
                        continue
                    bc = col([[0.5, 0.1, 0.08], [0.1, 0.15, 0.4], [0.7, 0.65, 0.55], [0.1, 0.3, 0.12],
                              [0.05, 0.05, 0.05], [0.6, 0.45, 0.1]][g.integers(6)], 0.25)
                    d = g.uniform(150, 260)
                    boxes.append(Box(np.array([x, y - h, wall_z - 20 - d]), np.array([x + w, y, wall_z - 20]), bc,
                                     "plain", float(g.uniform(0.15, 0.7))))
                    x += w + g.uniform(0, 4)
        # posters / a whiteboard / a door
        for _ in range(g.integers(1, 4)):
            px = hx + g.uniform(-2000, 2000)
            py = hy + g.uniform(-900, 100)
            w, h = g.uniform(300, 1000), g.uniform(300, 800)
            kind = g.choice(["poster", "plain", "wood"])
            c = col([0.85, 0.85, 0.85], 0.05) if kind == "plain" else col([0.5, 0.4, 0.3], 0.4)
            boxes.append(Box(np.array([px, py, wall_z - 15]), np.array([px + w, py + h, wall_z]), c, str(kind),
                             0.5, tex_seed=int(g.integers(1 << 30))))
        # a desk at the bottom with a monitor, a lamp, boxes
        desk_y = hy + g.uniform(420, 560)
        desk_c = col([[0.45, 0.3, 0.18], [0.7, 0.7, 0.68], [0.15, 0.15, 0.15]][g.integers(3)], 0.15)
        boxes.append(Box(np.array([hx - 1400, desk_y, hz - 700]), np.array([hx + 1400, desk_y + 30, hz - 150]),
                         desk_c, "wood", 0.5, tex_seed=int(g.integers(1 << 30))))
        for _ in range(g.integers(2, 6)):
            cx = hx + g.choice([-1, 1]) * g.uniform(280, 1100)
            w, h, d = g.uniform(40, 300), g.uniform(40, 350), g.uniform(40, 250)
            cz = hz - g.uniform(250, 650)
            boxes.append(Box(np.array([cx, desk_y - h, cz]), np.array([cx + w, desk_y, cz + d]),
                             col([0.3, 0.3, 0.3], 0.6), str(g.choice(["plain", "screen", "poster"])),
                             float(g.uniform(0.05, 0.7)), tex_seed=int(g.integers(1 << 30))))
        # office chair back behind the person
        if g.random() < 0.8:
            ctop = hy + g.uniform(60, 200)
            cc = col([0.03, 0.03, 0.035], 0.4)
            boxes.append(Box(np.array([hx - 240, ctop, hz + 160]), np.array([hx + 240, ctop + 600, hz + 240]), cc,
                             "fabric", 0.12, tex_seed=int(g.integers(1 << 30))))
        # ceiling
        ceil = hy - g.uniform(900, 1500)
        boxes.append(Box(np.array([-6000, ceil - 50, hz - 2000]), np.array([6000, ceil, wall_z]),
                         col([0.8, 0.8, 0.78], 0.05), "wall", 0.6, tex_seed=int(g.integers(1 << 30))))
    else:
        # car interior: headrest and seat behind the driver, roof lining, pillars, windows
        fabric = col([[0.04, 0.04, 0.045], [0.2, 0.18, 0.16], [0.35, 0.32, 0.28], [0.08, 0.08, 0.1]][g.integers(4)],
                     0.15)
        hr_z = hz + g.uniform(150, 200)
        boxes.append(Box(np.array([hx - 130, hy - 120, hr_z]), np.array([hx + 130, hy + 90, hr_z + 90]),
                         fabric, "fabric", 0.25, tex_seed=int(g.integers(1 << 30))))
        for sx in (-80, 80):  # headrest posts
            boxes.append(Box(np.array([hx + sx - 6, hy + 90, hr_z + 40]), np.array([hx + sx + 6, hy + 170, hr_z + 52]),
                             np.array([0.3, 0.3, 0.3]), "plain", 0.5))
        boxes.append(Box(np.array([hx - 280, hy + 170, hr_z + 30]), np.array([hx + 280, hy + 900, hr_z + 160]),
                         fabric, "fabric", 0.25, tex_seed=int(g.integers(1 << 30))))
        roof = hy - g.uniform(330, 480)
        lining = col([0.55, 0.53, 0.5], 0.1)
        boxes.append(Box(np.array([hx - 1500, roof - 40, hz - 900]), np.array([hx + 1500, roof, hz + 1600]),
                         lining, "fabric", 0.55, tex_seed=int(g.integers(1 << 30))))
        side = g.choice([-1, 1])
        door_x = hx + side * g.uniform(420, 560)
        # side window: daylight, no depth
        wlo = np.array([min(door_x, door_x + side * 30), roof + 60, hz - 700])
        whi = np.array([max(door_x, door_x + side * 30), hy + 220, hz + 200])
        boxes.append(Box(wlo, whi, col([0.75, 0.8, 0.85], 0.1), "window", 0.0, no_depth=True,
                         tex_seed=int(g.integers(1 << 30))))
        # B-pillar behind the window and the door panel below it
        plastic = col([0.06, 0.06, 0.065], 0.3)
        boxes.append(Box(np.array([door_x - 40, roof, hz + 200]), np.array([door_x + 40, hy + 900, hz + 420]),
                         plastic, "plain", 0.15))
        boxes.append(Box(np.array([door_x - 40, hy + 220, hz - 800]), np.array([door_x + 40, hy + 900, hz + 200]),
                         plastic * 1.5, "fabric", 0.2, tex_seed=int(g.integers(1 << 30))))
        # rear: seats and the rear window
        boxes.append(Box(np.array([hx - 800, hy - 50, hz + 1100]), np.array([hx + 800, hy + 700, hz + 1350]),
                         fabric * 0.9, "fabric", 0.25, tex_seed=int(g.integers(1 << 30))))
        boxes.append(Box(np.array([hx - 700, roof + 40, hz + 1500]), np.array([hx + 700, hy - 60, hz + 1520]),
                         col([0.7, 0.75, 0.8], 0.1), "window", 0.0, no_depth=True, tex_seed=int(g.integers(1 << 30))))
        boxes.append(Box(np.array([-5000, -5000, hz + 1600]), np.array([5000, 5000, hz + 1700]),
                         plastic, "plain", 0.2))
    return boxes


def _texture(kind: str, seed: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Multiplicative texture (per pixel, 3 channels) of a surface at surface coordinates a, b (mm)."""
    g = rng("texture", seed)
    n = a.shape[0]
    if kind in ("plain",):
        return np.ones((n, 3)) * (1.0 + 0.02 * np.sin(a * 0.01 + b * 0.013))[:, None]
    tile = _noise_tile(seed)
    ts = tile.shape[0]

    def look(scale, off=0):
        ia = (np.floor(a / scale).astype(np.int64) + off) % ts
        ib = (np.floor(b / scale).astype(np.int64) + 3 * off) % ts
        return tile[ib, ia]

    if kind == "wall":
        v = 1.0 + 0.05 * (look(12.0) - 0.5) + 0.03 * (look(3.0, 7) - 0.5)
        return np.repeat(v[:, None], 3, 1)
    if kind == "fabric":
        v = 1.0 + 0.25 * (look(2.5) - 0.5) + 0.15 * (look(20.0, 5) - 0.5)
        return np.repeat(v[:, None], 3, 1)
    if kind == "wood":
        grain = np.sin(a * 0.08 + 6.0 * look(40.0)) * 0.5 + 0.5
        v = 0.8 + 0.35 * grain + 0.1 * (look(4.0, 3) - 0.5)
        return np.stack([v * 1.05, v, v * 0.92], 1)
    if kind == "screen":
        v = 0.15 + 0.5 * (look(60.0) > 0.6)
        return np.stack([v, v * 1.1, v * 1.3], 1)
    if kind == "poster":
        pal = g.uniform(0.1, 1.8, (4, 3))
        k = np.clip((look(50.0) * 4).astype(int), 0, 3)
        return pal[k]
    if kind == "window":
        # a bright, blurred exterior: sky above, greenery/buildings below
        v = look(80.0)
        sky = np.array([1.25, 1.3, 1.4])
        ground = np.array([0.55, 0.65, 0.45]) * (0.6 + 0.8 * v)[:, None]
        w = smoothstep(b, -200.0 + 400.0 * (look(300.0, 11) - 0.5), 200.0)
        return sky[None, :] * (1 - w[:, None]) + ground * w[:, None]
    return np.ones((n, 3))


_TILES: dict[int, np.ndarray] = {}


def _noise_tile(seed: int) -> np.ndarray:
    key = seed % 8
    if key not in _TILES:
        _TILES[key] = fbm_2d((256, 256), 32.0, rng("tile", key), octaves=4)
    return _TILES[key]


def raycast_boxes(boxes: list[Box], origin: np.ndarray, rays: np.ndarray, light: Lighting,
                  cam=None, world_to_cam: np.ndarray | None = None):
    """Cast rays (H x W x 3 world-frame directions whose camera z is 1) from ``origin``.

    Returns the camera z of the hit (inf where none), the linear-RGB radiance, the IR
    reflectance, the cosine of incidence and a mask of pixels with a depth reading. ``cam``
    (intrinsics at the rays' resolution) and ``world_to_cam`` let each box test only the pixels
    it can cover."""
    h, w, _ = rays.shape
    f32 = np.float32
    t_best = np.full((h, w), np.inf, f32)
    ident = np.full((h, w), -1, np.int32)
    axis = np.zeros((h, w), np.int8)
    inv = [(1.0 / np.where(np.abs(rays[..., j]) < 1e-9, 1e-9, rays[..., j])).astype(f32) for j in range(3)]
    r_wc = np.eye(3) if world_to_cam is None else np.asarray(world_to_cam)
    for k, bx in enumerate(boxes):
        y0, y1, x0, x1 = 0, h, 0, w
        if cam is not None:
            corners = np.array([[bx.lo[0] if i & 1 else bx.hi[0], bx.lo[1] if i & 2 else bx.hi[1],
                                 bx.lo[2] if i & 4 else bx.hi[2]] for i in range(8)])
            pc = (corners - origin) @ r_wc.T
            if (pc[:, 2] > 1.0).all():
                uu, vv = cam.project_xyz(pc[:, 0], pc[:, 1], pc[:, 2])
                x0, x1 = int(max(np.floor(uu.min()) - 1, 0)), int(min(np.ceil(uu.max()) + 2, w))
                y0, y1 = int(max(np.floor(vv.min()) - 1, 0)), int(min(np.ceil(vv.max()) + 2, h))
                if x1 <= x0 or y1 <= y0:
                    continue
            elif (pc[:, 2] <= 1.0).all():
                continue
        sl = (slice(y0, y1), slice(x0, x1))
        tn = tf = None
        arg = None
        for j in range(3):
            iv = inv[j][sl]
            a = (f32(bx.lo[j] - origin[j])) * iv
            b = (f32(bx.hi[j] - origin[j])) * iv
            lo_t = np.minimum(a, b)
            hi_t = np.maximum(a, b)
            if tn is None:
                tn, tf, arg = lo_t, hi_t, np.zeros(lo_t.shape, np.int8)
            else:
                bigger = lo_t > tn
                tn = np.where(bigger, lo_t, tn)
                arg[bigger] = j
                tf = np.minimum(tf, hi_t)
        tb = t_best[sl]
        hit = (tn <= tf) & (tn > 1.0) & (tn < tb)
        if not hit.any():
            continue
        tb[hit] = tn[hit]
        ident[sl][hit] = k
        axis[sl][hit] = arg[hit]
    valid = ident >= 0
    flat_rays = rays.reshape(-1, 3)
    normal = np.zeros((h * w, 3), f32)
    rad = np.zeros((h * w, 3), f32)
    ir = np.zeros(h * w, f32)
    nodepth = np.zeros(h * w, bool)
    fid = ident.ravel()
    order = np.argsort(fid, kind="stable")
    counts = np.bincount(fid + 1, minlength=len(boxes) + 1)
    starts = np.concatenate([[0], np.cumsum(counts)])
    tflat = t_best.ravel()
    ax_flat = axis.ravel()
    key = np.asarray(light.key_dir, np.float64)
    fill_d = np.asarray(light.fill_dir, np.float64)
    for k, bx in enumerate(boxes):
        pix = order[starts[k + 1]:starts[k + 2]]
        if len(pix) == 0:
            continue
        ax = ax_flat[pix].astype(np.int64)
        rr = flat_rays[pix]
        n = np.zeros((len(pix), 3))
        n[np.arange(len(pix)), ax] = -np.sign(rr[np.arange(len(pix)), ax])
        normal[pix] = n
        pm = origin + rr * tflat[pix, None]
        # surface coordinates: the two axes other than the normal's
        a = np.where(ax == 0, pm[:, 2], pm[:, 0])
        b = np.where(ax == 1, pm[:, 2], pm[:, 1])
        tex = _texture(bx.texture, bx.tex_seed + k, a, b)
        alb = bx.colour[None, :] * tex
        if bx.texture == "window":
            rad[pix] = alb
        else:
            ndl = np.clip(n @ key, 0, None)[:, None]
            fill = np.clip(n @ fill_d, 0, None)[:, None]
            # rooms are lit more evenly than faces: soften the key light on them
            rad[pix] = alb * (0.6 * ndl * light.key_colour + fill * light.fill_colour + 1.6 * light.ambient
                              * (0.85 - 0.15 * n[:, 1:2]))
        ir[pix] = bx.ir
        nodepth[pix] = bx.no_depth
    cos_inc = np.abs((normal * normalize(flat_rays)).sum(-1)).reshape(h, w)
    has_depth = valid & ~nodepth.reshape(h, w)
    return t_best.astype(np.float64), rad.reshape(h, w, 3), ir.reshape(h, w), cos_inc, has_depth


def camera_rays(cam, width: int, height: int, rotation: np.ndarray | None = None) -> np.ndarray:
    """Ray directions (z = 1 in the camera) for a ``width`` x ``height`` rendering of ``cam``,
    expressed in the world frame through ``rotation`` (camera -> world), if given."""
    d = cam.scaled(width, height).ray_grid()
    if rotation is not None:
        d = d @ np.asarray(rotation).T
    return d


# --------------------------------------------------------------------------------------------
# the body below the head
# --------------------------------------------------------------------------------------------

_TORSO_PROTOTYPES: dict[int, tuple[np.ndarray, np.ndarray]] = {}
N_TORSO_PROTOTYPES = 6


def _torso_prototype(k: int) -> tuple[np.ndarray, np.ndarray]:
    """Shoulders and chest number ``k`` at unit scale, the neck base at y = 0 (head axes, mm).
    A few prototypes are built once per process and scaled to each person."""
    if k in _TORSO_PROTOTYPES:
        return _TORSO_PROTOTYPES[k]
    g = rng("torso-prototype", k)
    half_w = 188.0 + 12.0 * g.normal()       # shoulder half-width, arms included
    half_d = 112.0 + 8.0 * g.normal()
    zc = 35.0
    neck_r = 56.0
    slope = 0.36 + 0.06 * g.normal()

    def sdf(p):
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        ax = np.clip(np.abs(x) - 0.8 * neck_r, 0.0, None)
        f_top = (slope * ax + 0.0009 * ax ** 2 - y) * 0.93
        wy = half_w * (1.0 - 0.08 * smoothstep(y, 250.0, 500.0))
        f_side = ((np.abs(x / wy) ** 3.2 + np.abs((z - zc) / half_d) ** 2.4) ** (1 / 3.2) - 1.0) * half_w * 0.7
        f_bot = y - 650.0
        k_round = 30.0
        sm = smooth_max(f_top, f_side, k_round)
        return np.maximum(sm, f_bot)

    p, n = sdf_points(sdf, (0.0, 260.0, zc), 3.0, 420.0, theta_range=(np.pi / 2, 3 * np.pi / 2),
                      phi_range=(-np.pi / 2, np.radians(80)))
    _TORSO_PROTOTYPES[k] = (p.astype(np.float32), n.astype(np.float32))
    return _TORSO_PROTOTYPES[k]


def _torso_geometry(head: HeadModel) -> tuple[np.ndarray, np.ndarray, float]:
    """Shoulders and chest of ``head``'s body (head-rest axes, mm): a prototype scaled to the
    person and placed under the neck."""
    ident = head.identity
    k = int(rng("torso-choice", ident.subject, int(ident.neck_width * 1000)).integers(N_TORSO_PROTOTYPES))
    p, n = _torso_prototype(k)
    s = ident.scale
    y_neck = float(head.landmarks["chin"][1]) + 62.0 * s
    return p * np.float32(s) + np.array([0.0, y_neck, 0.0], np.float32), n, y_neck


def torso_points(head: HeadModel, plan: SequencePlan) -> tuple[PointSet, np.ndarray, np.ndarray]:
    """The shoulders and chest in head-rest coordinates, and the torso's pose (R, t) in the
    depth camera (the head at rest sits on it)."""
    ident = head.identity
    g = rng("torso", plan.seed, plan.index)
    s = ident.scale
    p, n, top = _torso_geometry(head)
    col = np.asarray(ident.shirt_colour)
    fab = 1.0 + 0.05 * np.sin(p[:, 0:1] * 0.9) * np.sin(p[:, 1:2] * 0.7) + 0.05 * g.normal(0, 1, (len(p), 1))
    alb = col[None, :] * fab
    alb *= (1.0 + 0.15 * np.sin(p[:, 0:1] * 0.025 + p[:, 1:2] * 0.018 + g.uniform(0, 6)))  # folds
    nx = np.abs(p[:, 0])
    depth_below = p[:, 1] - top
    if ident.garment in ("shirt", "jacket"):
        opening = (nx < 58.0 * s - 0.3 * depth_below) & (depth_below < 160) & (p[:, 2] < 40)
    else:
        opening = (nx < 64.0 * s) & (depth_below < 28.0 - 0.004 * nx ** 2) & (p[:, 2] < 40)
    skin = head.neck_albedo[len(head.neck_albedo) // 2] if len(head.neck_albedo) else np.array([0.4, 0.3, 0.2])
    alb[opening] = skin
    if ident.garment == "shirt":
        collar = (~opening) & (nx < 75.0 * s - 0.3 * depth_below) & (depth_below < 60) & (p[:, 2] < 40)
        alb[collar] = col * 1.1
    if ident.garment == "jacket":
        lapel = (~opening) & (nx < 115.0 * s - 0.25 * depth_below) & (p[:, 2] < 60)
        alb[lapel] = np.array([0.7, 0.7, 0.72]) if col.mean() < 0.3 else np.array([0.04, 0.04, 0.06])
    if plan.room == "car":
        sgn = 1.0 if plan.index % 2 else -1.0
        dist = np.abs(p[:, 1] - (top + 30) - sgn * 0.9 * (p[:, 0] + sgn * 110))
        alb[(dist < 26.0) & (p[:, 2] < 40)] = np.array([0.03, 0.03, 0.035])
    ps = PointSet.make(p, n, np.clip(alb, 0.005, 0.9), 0.03, 6.0, 0.45, 8, 3.0)
    rot = rot_y(np.radians(plan.torso_yaw_deg))
    return ps, rot, plan.head_anchor_mm.copy()


def scarf_points(head: HeadModel, colour: np.ndarray) -> PointSet:
    """A scarf wound round the neck (head-rest coordinates, moves with the torso)."""
    i = head.identity
    nz = float(head.neck_points[:, 2].mean())
    ytop = float(head.neck_points[:, 1].max()) - 90.0 * i.scale
    ts = np.radians(np.arange(0, 360, 1.2))
    ys = np.arange(ytop, ytop + 85.0, 1.6)
    T, Y = np.meshgrid(ts, ys)
    bulge = 1.0 + 0.15 * np.sin(np.pi * (Y - ytop) / 85.0)
    r = (i.neck_width + 16.0) * bulge + 3.0 * np.sin(T * 7.0 + Y * 0.2)
    pts = np.stack([r * np.sin(T), Y, nz - r * np.cos(T)], -1).reshape(-1, 3)
    nrm = np.stack([np.sin(T), np.zeros_like(T), -np.cos(T)], -1).reshape(-1, 3)
    stripes = (np.floor((Y.ravel() - ytop) / 14.0) % 2)[:, None]
    alb = colour[None, :] * (0.65 + 0.5 * stripes)
    return PointSet.make(pts, nrm, alb, 0.03, 5.0, 0.3, 8, 1.6)


def cap_points(head: HeadModel, colour: np.ndarray) -> PointSet:
    """A baseball cap on the head (head axes)."""
    i = head.identity
    grid = head.radius_grid  # (Y up model grid), 2-degree cells, already scaled
    gh, gw = grid.shape
    ts = np.radians(np.arange(-180, 180, 1.0))
    phs = np.radians(np.arange(10, 90, 1.0))
    T, P = np.meshgrid(ts, phs)
    d = np.stack([np.cos(P) * np.sin(T), np.sin(P), np.cos(P) * np.cos(T)], -1)
    col_i = (((np.degrees(T) + 180.0) / 2.0).astype(int)) % gw
    row_i = np.clip(((np.degrees(P) + 90.0) / 2.0).astype(int), 0, gh - 1)
    r = grid[row_i, col_i] + 4.0
    # the band dips lower at the back
    edge = np.radians(22.0 - 14.0 * (1 - np.cos(T)) / 2.0 + 0 * i.scale)
    keep = P > edge
    pts_m = (d * r[..., None])[keep]
    nrm_m = d[keep]
    # brim: a slightly curved plate forward of the forehead
    bx = np.arange(-80, 80, 1.4)
    bz = np.arange(0, 75, 1.4)
    BX, BZ = np.meshgrid(bx, bz)
    front_r = float(np.interp(0.0, [0.0], [grid[int((22 + 90) / 2), gw // 2]]))
    y0 = np.sin(np.radians(22.0)) * front_r + 2.0
    z0 = np.cos(np.radians(22.0)) * front_r - 8.0
    by = y0 - 0.004 * BX ** 2 - 0.12 * BZ
    brim = np.stack([BX, by, z0 + BZ * (1 - (BX / 95.0) ** 2)], -1).reshape(-1, 3)
    brim_keep = (BZ.ravel() < 75 * np.sqrt(np.clip(1 - (BX.ravel() / 85.0) ** 2, 0, 1)))
    brim = brim[brim_keep]
    bn = np.tile([0.0, 1.0, 0.1], (len(brim), 1))
    pts = np.concatenate([pts_m, brim])
    nrm = np.concatenate([nrm_m, bn])
    flip = np.array([1.0, -1.0, -1.0])
    alb = np.tile(colour, (len(pts), 1)) * (1 + 0.05 * np.sin(pts[:, 0:1] * 0.5))
    return PointSet.make(pts * flip, nrm * flip, alb, 0.04, 6.0, 0.4, 9, 1.8)
