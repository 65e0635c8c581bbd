"""``virtual:`` - the virtual Kinect v2 as a frame source.

    virtual:seed=0,subjects=0-99,sequence=mixed,distance=0.6-1.5,pace=off,frames=1000

Frame ``i`` is a pure function of the options and ``i`` (:meth:`VirtualKinect.render`), so work
can be split between processes by frame ranges (``start=``) and a fixed seed reproduces every
frame bit for bit. See the README's "Virtual Kinect" section for every option.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from sensors.errors import ConfigError
from sensors.frame import Frame
from sensors.source import Options, Pacer, Source, SourceURI, parse_uri
from sensors.virtual._util import rng
from sensors.virtual.facekit import FaceModel, load_face_model
from sensors.virtual.people import HeadModel, build_head, sample_identity
from sensors.virtual.real_scan import RealScan, load_real_scan
from sensors.virtual.scan_heads import scan_shape
from sensors.virtual.cameras import COLOR_CAMERA, DEPTH_CAMERA, DEPTH_TO_COLOR, FPS
from sensors.virtual.plane import PlaneScene
from sensors.virtual.render import Renderer, Stage
from sensors.virtual.scene import SequencePlan, frame_state, plan_sequence

SEQUENCE_KINDS = ("calm", "free", "mixed")
#: how long close() waits for a background sequence build before leaving it to finish alone
PREFETCH_CLOSE_WAIT_S = 0.5
ROOMS = ("mixed", "office", "car", "none")
HEAD_KINDS = ("scan", "procedural", "mixed")
#: the environment variable that names a face model folder when the URI does not
FACE_MODEL_ENV = "FACEDEPTH_FACE_MODEL"


#: the longest sequence (frames; an hour at 30 fps): each is planned whole before its first frame
MAX_SEQUENCE_FRAMES = 108_000


@dataclass(frozen=True)
class VirtualOptions:
    """The parsed ``virtual:`` options (see the README for their meaning)."""

    seed: int = 0
    identity_seed: int = 0
    subjects: tuple[int, int] = (0, 99)
    sequence: str = "mixed"
    distance_m: tuple[float, float] = (0.6, 1.5)
    frames: int | None = None
    start: int = 0
    pace: bool = True
    occluders: str = "on"
    noise: bool = True
    scene: str = "people"
    sequence_frames: int = 300
    plane_mm: float = 200.0
    plane_tilt_deg: float = 0.0
    room: str = "mixed"
    face_model: str | None = None
    heads: str = "procedural"
    person: str | None = None  # a real head scan (.glb) shown in every sequence, for evaluation only
    texture: str | None = None  # its colour map
    scale_mm: float = 43.0  # millimetres per unit of the scan's mesh

    @classmethod
    def parse(cls, uri: SourceURI) -> "VirtualOptions":
        o = Options(uri)
        seed = o.int("seed", 0)
        identity_seed = o.int("identity_seed", seed)
        subjects = o.int_range("subjects", None)
        subject = o.int("subject", None)
        if subjects is not None and subject is not None:
            raise ConfigError(f"give subjects=A-B or subject=K, not both, in source {uri}")
        if subject is not None:
            subjects = (subject, subject)
        subjects = subjects if subjects is not None else (0, 99)
        sequence = (o.str("sequence", "mixed") or "mixed").lower()
        dist_raw = o.str("distance", None)
        frames = o.int("frames", None)
        start = o.int("start", 0)
        pace = o.bool("pace", True)
        occluders = o.switch("occluders", "on", ("often",))
        noise = o.bool("noise", True)
        scene = (o.str("scene", "people") or "people").lower()
        seq_frames = o.int("sequence_frames", 300)
        plane_mm = o.float("plane_mm", 200.0)
        plane_tilt = o.float("plane_tilt", 0.0)
        room = (o.str("room", "mixed") or "mixed").lower()
        face_model = o.str("face_model", None) or os.environ.get(FACE_MODEL_ENV) or None
        heads = (o.str("heads", None) or ("scan" if face_model else "procedural")).lower()
        person = o.str("person", None) or None
        texture = o.str("texture", None) or None
        scale_mm = o.float("scale_mm", 43.0)
        o.finish()
        if person is not None and person.lower().startswith("scan:"):
            person = person[5:]
        if person is None and texture is not None:
            raise ConfigError(f"option texture= in source {uri} needs person=scan:PATH.glb")
        if not (5.0 <= scale_mm <= 2000.0):
            raise ConfigError(f"option scale_mm={scale_mm:g} in source {uri} must be 5-2000 (mm per mesh unit)")
        if heads not in HEAD_KINDS:
            raise ConfigError(f"option heads={heads!r} in source {uri} must be one of {', '.join(HEAD_KINDS)}")
        if heads != "procedural" and not face_model:
            raise ConfigError(f"option heads={heads} in source {uri} needs a face model: face_model=PATH "
                              f"(an ICT-FaceKit FaceXModel folder) or the environment variable {FACE_MODEL_ENV}")
        if room not in ROOMS:
            raise ConfigError(f"option room={room!r} in source {uri} must be one of {', '.join(ROOMS)}")
        if subjects[0] < 0:
            raise ConfigError(f"subject numbers must be >= 0, got {subjects[0]} in source {uri}")
        if sequence not in SEQUENCE_KINDS:
            raise ConfigError(f"option sequence={sequence!r} in source {uri} must be calm, free or mixed")
        if scene not in ("people", "plane"):
            raise ConfigError(f"option scene={scene!r} in source {uri} must be people or plane")
        dist = (0.6, 1.5) if scene == "people" else (1.0, 1.0)
        if dist_raw is not None:
            dist = _parse_distance(dist_raw, uri)
        if frames is not None and frames < 1:  # no frames would end a run with nothing done, exit 0
            raise ConfigError(f"option frames={frames} in source {uri} must be at least 1 (leave it out for no end)")
        if start < 0:
            raise ConfigError(f"option start={start} in source {uri} must be >= 0")
        if not 30 <= seq_frames <= MAX_SEQUENCE_FRAMES:  # a sequence is planned whole: bounded
            raise ConfigError(f"option sequence_frames={seq_frames} in source {uri} must be 30-{MAX_SEQUENCE_FRAMES}")
        if not (10.0 <= plane_mm <= 2000.0):
            raise ConfigError(f"option plane_mm={plane_mm:g} in source {uri} must be 10-2000")
        if not (-85.0 <= plane_tilt <= 85.0):
            raise ConfigError(f"option plane_tilt={plane_tilt:g} in source {uri} must be -85..85 degrees")
        return cls(seed, identity_seed, (int(subjects[0]), int(subjects[1])), sequence, dist, frames, start, pace,
                   occluders, noise, scene, seq_frames, float(plane_mm), float(plane_tilt), room,
                   face_model if heads != "procedural" else None, heads,
                   os.path.expanduser(person) if person else None, os.path.expanduser(texture) if texture else None,
                   float(scale_mm))


def _parse_distance(raw: str, uri: SourceURI) -> tuple[float, float]:
    a, dash, b = raw.partition("-")
    try:
        lo = float(a)
        hi = float(b) if dash else lo
    except ValueError:
        raise ConfigError(f"option distance={raw!r} in source {uri} must be metres, e.g. 0.6-1.5 or 1.0") from None
    if not (0.5 <= lo <= hi <= 4.0):
        raise ConfigError(f"option distance={raw!r} in source {uri} must lie within 0.5-4.0 m, low to high")
    return lo, hi


class VirtualKinect(Source):
    """The virtual Kinect v2: synthetic people in rooms, seen by a simulated Kinect v2.

    Public API beyond :class:`~sensors.source.Source`:

    - :meth:`render` ``(index) -> Frame``: frame ``index`` of the stream, independent of any
      other call (a pure function of the options and ``index``; ``timestamp_ns`` is
      ``index * 1e9 / 30``). Rendering consecutive frames is fastest (stages are cached).
    - :meth:`render_posed` ``(subject, yaw_deg, pitch_deg, roll_deg, jaw, smile, blink,
      distance_m, sequence) -> Frame``: one person in a chosen pose and expression.
    - :meth:`sequence_of` ``(index) -> SequencePlan`` and :meth:`subject_of` ``(index) -> int``.
    - :attr:`options` (:class:`VirtualOptions`), :attr:`dropped` (frames skipped while paced
      because the reader was late, as a real sensor drops them).

    Every frame carries ground truth: ``head_center_mm`` (skull centre, depth camera),
    ``head_rotation`` (head axes -> depth camera, identity = facing the camera),
    ``subject_id`` and ``depth_clean_mm`` (noise-free depth, 0 = no surface in range); people
    frames also carry ``face_mask`` (the depth pixels where the narrow face area is the visible
    surface, see :class:`~sensors.frame.Frame`); ``scene=plane`` frames have none (None).
    """

    is_live = True

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        self.options = VirtualOptions.parse(uri)
        self.is_live = self.options.pace
        self.dropped = 0
        self._renderer: Renderer | None = None
        self._plane: PlaneScene | None = None
        self._heads: OrderedDict[int, HeadModel] = OrderedDict()
        self._stages: OrderedDict[int, tuple[SequencePlan, Stage]] = OrderedDict()
        self._posed_stages: dict = {}
        self._cache_lock = threading.Lock()
        self._prefetching: dict[int, threading.Thread] = {}
        self._next = self.options.start
        self._pacer = Pacer(self.options.pace)
        self._first_due = self.options.start
        # a wrong face model folder fails here, named, before any frame
        self._face_model: FaceModel | None = (
            load_face_model(self.options.face_model) if self.options.face_model else None)
        # a real head scan (person=): a wrong file fails here, named; evaluation only
        self._real: RealScan | None = (
            load_real_scan(self.options.person, self.options.texture, self.options.scale_mm)
            if self.options.person else None)

    @classmethod
    def check_options(cls, uri: SourceURI) -> None:
        """The options alone: constructing would load the face model or scan (seconds)."""
        VirtualOptions.parse(uri)

    @classmethod
    def from_uri(cls, uri: str) -> "VirtualKinect":
        """Construct (not opened) from a ``virtual:...`` string."""
        return cls(parse_uri(uri))

    # -- Source ---------------------------------------------------------------------------
    def _open(self) -> None:
        self._ensure_renderer()
        if self.options.scene == "people":  # the first sequence is ready before the clock starts
            self._stage(self._next // self.options.sequence_frames)
        self._pacer.reset()
        self._first_due = self._next

    def _ensure_renderer(self) -> None:
        if self.options.scene == "plane":
            if self._plane is None:
                self._plane = PlaneScene(self.options)
        elif self._renderer is None:
            self._renderer = Renderer(noise=self.options.noise)

    def _read(self, timeout_s: float) -> Frame:
        o = self.options
        if o.frames is not None and self._next >= o.start + o.frames:
            raise EOFError(f"source {self.uri}: all {o.frames} frames delivered")
        if o.pace:
            elapsed = time.monotonic() - self._pacer._t0
            due_now = self._first_due + int(elapsed * FPS)
            if due_now > self._next + 1:  # the reader fell behind: skip, as the sensor would
                skip = due_now - self._next - 1
                if o.frames is not None:
                    skip = min(skip, o.start + o.frames - 1 - self._next)
                self.dropped += max(skip, 0)
                self._next += max(skip, 0)
            self._pacer.wait((self._next - self._first_due) / FPS, timeout_s)
            # the sensor's capture time: when the frame was due on the 30 fps clock
            stamp = int(round((self._pacer._t0 + (self._next - self._first_due) / FPS) * 1e9))
        else:
            stamp = time.monotonic_ns()
        frame = self.render(self._next)
        self._next += 1
        return _with_timestamp(frame, stamp)

    def _close(self) -> None:
        # a prefetch is pure computation (no device, no file): wait for it briefly, then let it
        # finish on its own (a daemon thread), so closing never stalls the window or Ctrl-C
        deadline = time.monotonic() + PREFETCH_CLOSE_WAIT_S
        for th in list(self._prefetching.values()):
            th.join(timeout=max(0.0, deadline - time.monotonic()))
        with self._cache_lock:
            self._heads.clear()
            self._stages.clear()

    @property
    def seekable_frames(self) -> int | None:
        """With ``frames=N``, the stream's N frames can be made in any order (``seek``); None when unlimited."""
        return self.options.frames

    def seek(self, index: int) -> None:
        """Make the next read() return the stream's frame ``index`` (0-based, after ``start``)."""
        n = self.options.frames
        if n is None or not 0 <= index < n:
            raise ConfigError(f"source {self.uri}: cannot seek to frame {index} (frames={n})")
        self._next = self.options.start + int(index)
        self._pacer.reset()
        self._first_due = self._next

    def restart_clock(self) -> None:
        self._pacer.reset()
        self._first_due = self._next

    def describe(self) -> dict[str, Any]:
        d = super().describe()
        o = self.options
        d.update({
            "device": "virtual Kinect v2",
            "seed": o.seed, "identity_seed": o.identity_seed, "subjects": list(o.subjects),
            "sequence": o.sequence, "distance_m": list(o.distance_m), "scene": o.scene,
            "noise": o.noise, "occluders": o.occluders, "pace": o.pace,
            # the face model's folder (or cache file) by name: a machine's paths do not belong in the
            # datasets and models made from its frames
            "heads": o.heads, "face_model": os.path.basename(os.path.normpath(o.face_model)) if o.face_model else None,
            "color_camera": COLOR_CAMERA.to_dict(), "depth_camera": DEPTH_CAMERA.to_dict(),
            "depth_to_color": DEPTH_TO_COLOR.to_dict(),
        })
        if self._real is not None:  # a real person's scan: credited, and never training data
            d.update({"person": o.person, "texture": o.texture, "scale_mm": o.scale_mm,
                      "subject_id": self._real.subject_id, "credit": self._real.credit, "evaluation_only": True})
        return d

    def subject_id(self, subject: int) -> int | str:
        """What frames of ``subject`` carry as ``subject_id``: the number, or with ``person=``
        the scan's ``real:<name>`` (a string: never mistaken for a synthetic identity)."""
        return self._real.subject_id if self._real is not None else int(subject)

    # -- the public rendering API -----------------------------------------------------------
    def subject_of(self, index: int) -> int:
        """The subject number shown in frame ``index``."""
        k = index // self.options.sequence_frames
        a, b = self.options.subjects
        n = b - a + 1
        perm = rng("subject-order", self.options.seed, k // n).permutation(n)
        return a + int(perm[k % n])

    def sequence_of(self, index: int) -> SequencePlan:
        """The plan of the sequence that frame ``index`` belongs to."""
        o = self.options
        k = index // o.sequence_frames
        kind = o.sequence
        if kind == "mixed":
            kind = "calm" if rng("sequence-kind", o.seed, k).random() < 0.4 else "free"
        return plan_sequence(o.seed, k, self.subject_of(index), kind, o.distance_m, o.occluders, o.sequence_frames,
                             o.room)

    def head_kind(self, subject: int) -> str:
        """``scan`` or ``procedural``: how ``subject``'s head is made (``heads=mixed`` draws it
        per person, a pure function of ``identity_seed`` and the subject)."""
        o = self.options
        if self._real is not None:
            return "real"
        if o.heads != "mixed":
            return o.heads
        return "scan" if rng("head-kind", o.identity_seed, subject).random() < 0.5 else "procedural"

    def head_model(self, subject: int) -> HeadModel:
        """The built head of ``subject`` (cached)."""
        with self._cache_lock:
            if subject in self._heads:
                self._heads.move_to_end(subject)
                return self._heads[subject]
        o = self.options
        ident = sample_identity(o.identity_seed, subject)
        scan = scan_shape(self._face_model, o.identity_seed, subject) if self.head_kind(subject) == "scan" else None
        if self._real is not None:  # the scan's own skin and hair: nothing procedural over it
            scan = self._real.shape
            ident = replace(ident, hair_style="bald", hair_thickness=0.0, beard_style="none", beard_density=0.0,
                            glasses=False)
        model = build_head(ident, scan)
        with self._cache_lock:
            self._heads[subject] = model
            while len(self._heads) > 8:
                self._heads.popitem(last=False)
        return model

    def _build_stage_entry(self, k: int) -> tuple[SequencePlan, Stage]:
        assert self._renderer is not None
        plan = self.sequence_of(k * self.options.sequence_frames)
        stage = self._renderer.build_stage(plan, self.head_model(plan.subject))
        with self._cache_lock:
            self._stages[k] = (plan, stage)
            while len(self._stages) > 3:
                self._stages.popitem(last=False)
        return plan, stage

    def _stage(self, k: int) -> tuple[SequencePlan, Stage]:
        """The plan and stage of sequence ``k``: cached, being prefetched, or built now."""
        with self._cache_lock:
            if k in self._stages:
                self._stages.move_to_end(k)
                return self._stages[k]
            pending = self._prefetching.get(k)
        if pending is not None:
            pending.join()
            with self._cache_lock:
                self._prefetching.pop(k, None)
                if k in self._stages:
                    return self._stages[k]
        return self._build_stage_entry(k)

    def _maybe_prefetch(self, index: int) -> None:
        """While paced, build the next sequence in the background from the start of this
        one, so a change of person or room does not stall the 30 fps stream."""
        o = self.options
        if not o.pace or o.scene != "people" or index % o.sequence_frames < 1:
            return
        k = index // o.sequence_frames + 1
        if o.frames is not None and k * o.sequence_frames >= o.start + o.frames:
            return
        with self._cache_lock:
            if k in self._stages or k in self._prefetching:
                return
            th = threading.Thread(target=self._build_stage_entry, args=(k,), name=f"virtual-prefetch-{k}",
                                  daemon=True)
            self._prefetching[k] = th
        th.start()

    def render_posed(self, subject: int, yaw_deg: float = 0.0, pitch_deg: float = 0.0, roll_deg: float = 0.0,
                     jaw: float = 0.0, smile: float = 0.0, blink: float = 0.0, distance_m: float | None = None,
                     sequence: int = 0) -> Frame:
        """``subject`` in a chosen pose and expression (weights 0..1), in the room, light and camera
        of sequence ``sequence`` (without occluders), the head centre at ``distance_m`` if given.
        Deterministic; for contact sheets and tests."""
        if self.options.scene == "plane":
            raise ConfigError("render_posed needs scene=people")
        return _posed_frame(self, subject, yaw_deg, pitch_deg, roll_deg, jaw, smile, blink, distance_m, sequence)

    def render(self, index: int) -> Frame:
        """Frame ``index`` (>= 0) of this stream; see the class docstring."""
        if index < 0:
            raise ConfigError(f"frame index must be >= 0, got {index}")
        self._ensure_renderer()
        stamp = int(round(index * 1e9 / FPS))
        if self.options.scene == "plane":
            assert self._plane is not None
            return self._plane.render(index, stamp, str(self.uri))
        assert self._renderer is not None
        k = index // self.options.sequence_frames
        plan, stage = self._stage(k)
        self._maybe_prefetch(index)
        head = self.head_model(plan.subject)
        t = (index - k * self.options.sequence_frames) / FPS
        st = frame_state(plan, t)
        if self._real is not None:  # a scan has no expressions and no eye openings
            st = replace(st, jaw=0.0, smile=0.0, brows=0.0, blink=0.0)
        g = rng("frame", self.options.seed, index)
        color, depth, clean, face = self._renderer.render(plan, st, head, stage, g)
        return Frame(
            index=int(index), timestamp_ns=stamp, color=color, color_camera=COLOR_CAMERA,
            depth_mm=depth, depth_camera=DEPTH_CAMERA, depth_to_color=DEPTH_TO_COLOR,
            head_center_mm=st.centre_mm.copy(), head_rotation=st.rotation.copy(), subject_id=self.subject_id(plan.subject),
            depth_clean_mm=clean, source=str(self.uri), face_mask=face,
        )


def _posed_frame(src: VirtualKinect, subject: int, yaw_deg: float, pitch_deg: float, roll_deg: float,
                 jaw: float, smile: float, blink: float, distance_m: float | None, sequence: int) -> Frame:
    from dataclasses import replace

    from sensors.geometry import rotation_from_euler_deg
    from sensors.virtual.scene import PIVOT_H, FrameState

    o = src.options
    src._ensure_renderer()
    assert src._renderer is not None
    base = src.sequence_of(sequence * o.sequence_frames)
    anchor = base.head_anchor_mm.copy()
    if distance_m is not None:
        anchor = anchor * (1000.0 * distance_m / anchor[2])
    plan = replace(base, subject=int(subject), head_anchor_mm=anchor, occluders=(), cap=False, scarf=False)
    head = src.head_model(int(subject))
    key = ("posed", int(subject), sequence, float(anchor[2]))
    stage = src._posed_stages.get(key)
    if stage is None:
        stage = src._renderer.build_stage(plan, head)
        src._posed_stages.clear()
        src._posed_stages[key] = stage
    if src._real is not None:  # a scan has no expressions and no eye openings
        jaw = smile = blink = 0.0
    rot = rotation_from_euler_deg(yaw_deg, pitch_deg, roll_deg)
    centre = anchor + (PIVOT_H - rot @ PIVOT_H)
    st = FrameState(rotation=rot, centre_mm=centre, yaw_pitch_roll_deg=np.array([yaw_deg, pitch_deg, roll_deg]),
                    jaw=float(jaw), smile=float(smile), brows=0.0, blink=float(blink), gaze_mm=(0.0, 0.0),
                    occluder=None, occluder_variant=0, occluder_amount=0.0, time_s=0.0)
    g = rng("posed-frame", o.seed, int(subject), sequence)
    color, depth, clean, face = src._renderer.render(plan, st, head, stage, g)
    return Frame(index=0, timestamp_ns=0, color=color, color_camera=COLOR_CAMERA, depth_mm=depth,
                 depth_camera=DEPTH_CAMERA, depth_to_color=DEPTH_TO_COLOR, head_center_mm=centre,
                 head_rotation=rot, subject_id=src.subject_id(subject), depth_clean_mm=clean, source=str(src.uri),
                 face_mask=face)


def _with_timestamp(frame: Frame, stamp_ns: int) -> Frame:
    from dataclasses import replace

    return replace(frame, timestamp_ns=int(stamp_ns))
