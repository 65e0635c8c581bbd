"""Small fakes for the pipeline and GUI tests: a seekable RGB-D source with a head annotation,
generators (a tiny real ONNX model built with onnx.helper, and slow / failing Python ones)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from models.common.errors import ModelError
from sensors.errors import SourceLostError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.source import Options, SeekableSource, Source, SourceURI, open_source

CROP = {"size_px": 100, "window_x_mm": 240.0, "window_y_mm": 240.0, "half_range_mm": 150.0}
#: a Kinect v2-like rig at reduced size: colour 640x360, depth 256x212, 52 mm apart
COLOR_CAM = CameraIntrinsics(360.5, 360.5, 319.5, 179.5, 640, 360)
DEPTH_CAM = CameraIntrinsics(182.75, 182.75, 127.5, 105.5, 256, 212)
DEPTH_TO_COLOR = Extrinsics(np.eye(3), [-52.0, 0.0, 0.0])
HEAD_MM = np.array([52.0, 0.0, 800.0])   # depth-camera coordinates; (0, 0, 800) in the colour camera
HEAD_RADIUS_MM = 90.0
WALL_MM = 1600


def _scene(cam: CameraIntrinsics = COLOR_CAM) -> tuple[np.ndarray, np.ndarray]:
    """The depth of a sphere (the head) before a wall, and a colour image with a shaded disc."""
    v, u = np.mgrid[0:DEPTH_CAM.height, 0:DEPTH_CAM.width].astype(np.float64)
    rx, ry = (u - DEPTH_CAM.cx) / DEPTH_CAM.fx, (v - DEPTH_CAM.cy) / DEPTH_CAM.fy
    d = np.stack([rx, ry, np.ones_like(rx)], -1)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    b = d @ HEAD_MM
    disc = b * b - (HEAD_MM @ HEAD_MM - HEAD_RADIUS_MM ** 2)
    t = b - np.sqrt(np.clip(disc, 0, None))
    z = np.where(disc > 0, t * d[..., 2], WALL_MM)
    depth = np.rint(z).astype(np.uint16)
    cv, cu = np.mgrid[0:cam.height, 0:cam.width].astype(np.float32)
    color = np.empty((cam.height, cam.width, 3), np.uint8)
    color[..., 0] = (60 + 80 * cu / cam.width).astype(np.uint8)
    color[..., 1] = (70 + 60 * cv / cam.height).astype(np.uint8)
    color[..., 2] = 110
    r_px = cam.fx * HEAD_RADIUS_MM / 800.0
    rr = ((cu - cam.cx) ** 2 + (cv - cam.cy) ** 2) / r_px ** 2
    inside = rr < 1
    shade = np.sqrt(np.clip(1 - rr, 0, 1))
    skin = np.array([224, 172, 140], np.float32)
    color[inside] = (skin * (0.35 + 0.65 * shade[inside, None])).astype(np.uint8)
    return depth, color


class FakeRGBDSource(SeekableSource):
    """``n`` frames of a sphere "head" before a wall, annotated with its centre.

    Options: ``n`` frames (default 120), ``fps`` pacing (0 = as fast as possible), ``scale``
    (colour size: 1 = 640x360, 3 = Kinect v2's 1920x1080), ``lost_at``
    frame index at which the stream raises SourceLostError (a sensor unplugged), ``live``,
    ``annotate`` (off: no head annotation, so the locator must detect; the sphere is no face).
    Frame k carries k in a small block of the colour image (and, when not live, in its
    timestamp), so frames can be told apart after a round trip.
    """

    def __init__(self, uri: SourceURI) -> None:
        super().__init__(uri)
        opts = Options(uri)
        self.n = opts.int("n", 120)
        self.fps = opts.float("fps", 0.0)
        self.lost_at = opts.int("lost_at", None)
        self.is_live = opts.bool("live", False)
        self.annotate = opts.bool("annotate", True)
        scale = opts.int("scale", 1)
        opts.finish()
        self.color_camera = COLOR_CAM.scaled(COLOR_CAM.width * scale, COLOR_CAM.height * scale)
        self._pos = 0
        self._t0 = 0.0
        self.reads = 0

    def _open(self) -> None:
        self._depth, self._color = _scene(self.color_camera)
        self._t0 = time.monotonic()

    def _read(self, timeout_s: float) -> Frame:
        if self.lost_at is not None and self._pos >= self.lost_at:
            raise SourceLostError("fake sensor unplugged", path=str(self.uri))
        if self._pos >= self.n:
            raise EOFError("end of the fake stream")
        if self.fps > 0:
            due = self._t0 + self.reads / self.fps
            delay = due - time.monotonic()
            if delay > timeout_s:
                time.sleep(timeout_s)
                raise TimeoutError("next frame not due yet")
            if delay > 0:
                time.sleep(delay)
        k = self._pos
        color = self._color.copy()
        color[:8, :8] = k % 256
        self._pos += 1
        self.reads += 1
        # live: stamped at capture on the monotonic clock, as sensors do; else a recorded time
        stamp = time.monotonic_ns() if self.is_live else 1_000_000_000 + k * 33_333_333
        return Frame(index=k, timestamp_ns=stamp, color=color, color_camera=self.color_camera,
                     depth_mm=self._depth, depth_camera=DEPTH_CAM, depth_to_color=DEPTH_TO_COLOR,
                     head_center_mm=HEAD_MM if self.annotate else None, subject_id=1, source=str(self.uri))

    def _close(self) -> None:
        pass

    def restart_clock(self) -> None:
        self._t0 = time.monotonic()
        self.reads = 0

    def __len__(self) -> int:
        return self.n

    def seek(self, index: int) -> None:
        self._pos = int(np.clip(index, 0, self.n))

    @property
    def position(self) -> int:
        return self._pos


def fake_source(**options: object) -> FakeRGBDSource:
    """An opened FakeRGBDSource with the given options."""
    uri = SourceURI("fake", None, {k: str(v) for k, v in options.items()})
    return FakeRGBDSource(uri).open()


class SlowGenerator:
    """A Python generator that takes ``delay_s`` per crop: predicts the crop's own depth shape
    as a flat disc (levels from the colour's brightness)."""

    crop_config_dict = dict(CROP)

    def __init__(self, delay_s: float = 0.0, name: str = "slow") -> None:
        self.delay_s = delay_s
        self.name = name
        self.calls = 0

    def predict(self, color: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.delay_s:
            time.sleep(self.delay_s)
        bright = color.astype(np.float32).mean(axis=-1)
        return np.where(bright > 100, np.clip(bright, 1, 255), 0).astype(np.uint8)


class FailingGenerator(SlowGenerator):
    """Raises ModelError on the ``fail_at``-th call (a model that breaks at run time)."""

    def __init__(self, fail_at: int = 3) -> None:
        super().__init__(name="failing")
        self.fail_at = fail_at

    def predict(self, color: np.ndarray) -> np.ndarray:
        if self.calls + 1 >= self.fail_at:
            raise ModelError("fake model failed", "failing.onnx")
        return super().predict(color)


def write_tiny_generator(path: str | Path, crop: dict | None = None, synthetic_only: bool = True,
                         weights: tuple[float, float, float] = (0.6, 0.6, 0.6), bias: float = 0.0) -> Path:
    """A real (tiny) ONNX generator with the metadata ``launch.py export`` writes: one 1x1
    convolution and tanh, so brighter pixels come out nearer. Built with onnx.helper (no torch)."""
    import onnx
    from onnx import TensorProto, helper

    crop = dict(CROP if crop is None else crop)
    s = int(crop["size_px"])
    w = helper.make_tensor("w", TensorProto.FLOAT, [1, 3, 1, 1], [float(x) for x in weights])
    b = helper.make_tensor("b", TensorProto.FLOAT, [1], [bias])
    graph = helper.make_graph(
        [helper.make_node("Conv", ["color", "w", "b"], ["z"]), helper.make_node("Tanh", ["z"], ["depth"])],
        "tiny_generator",
        [helper.make_tensor_value_info("color", TensorProto.FLOAT, ["N", 3, s, s])],
        [helper.make_tensor_value_info("depth", TensorProto.FLOAT, ["N", 1, s, s])],
        initializer=[w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = {
        "facedepth.format": 1,
        "input": {"name": "color", "layout": "NCHW", "dtype": "float32"},
        "output": {"name": "depth", "range": [-1, 1]},
        "normalisation": {"input_scale": 1 / 127.5, "input_offset": -1.0},
        "crop": crop,
        "encoding": {"levels": "255 nearest .. 1 farthest, 0 invalid", "half_range_mm": crop["half_range_mm"]},
        "model_kind": "tiny-test",
        "synthetic_only": synthetic_only,
    }
    for k, v in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, json.dumps(v)
    path = Path(path)
    onnx.save(model, str(path))
    return path


def write_tiny_verifier(path: str | Path, size_px: int = 100, dim: int = 16, threshold: float = 0.8,
                        seed: int = 0) -> Path:
    """A real (tiny) ONNX face verifier with the metadata models.verifier.runtime reads: a fixed
    random projection of the depth crop, L2-normalised. Built with onnx.helper (no torch)."""
    import onnx
    from onnx import TensorProto, helper

    rng = np.random.default_rng(seed)
    proj = rng.normal(size=(size_px * size_px, dim)).astype(np.float32) / size_px
    nodes = [
        helper.make_node("Cast", ["depth"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Reshape", ["f", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "proj"], ["e"]),
        helper.make_node("LpNormalization", ["e"], ["embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes, "tiny_verifier",
        [helper.make_tensor_value_info("depth", TensorProto.UINT8, ["N", size_px, size_px])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", dim])],
        initializer=[helper.make_tensor("shape", TensorProto.INT64, [2], [-1, size_px * size_px]),
                     helper.make_tensor("proj", TensorProto.FLOAT, list(proj.shape), proj.ravel().tolist())],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    from models.verifier.runtime import METADATA_KEY

    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps({"threshold": threshold, "embedding_dim": dim, "size_px": size_px, "crop": CROP})
    path = Path(path)
    onnx.save(model, str(path))
    return path


def open_fake_or_real(uri: str) -> Source:
    """A source opener for windows and controllers under test: ``fake:key=value,...`` opens a
    :func:`fake_source`, anything else opens as the app would."""
    if uri.startswith("fake:"):
        return fake_source(**dict(item.split("=", 1) for item in uri[5:].split(",") if item))
    return open_source(uri)
