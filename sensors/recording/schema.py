"""The recording file layout: MCAP with ROS 2 messages.

File layout (profile ``ros2``, messages CDR-encoded through ``mcap-ros2-support``, so files open
in Foxglove and play with ``ros2 bag play``). Per frame, all messages share one log time:

======================================  =======================================  ==================
topic                                   type                                     when
======================================  =======================================  ==================
``/camera/color/camera_info``           ``sensor_msgs/msg/CameraInfo``           every frame
``/camera/depth/camera_info``           ``sensor_msgs/msg/CameraInfo``           frames with depth
``/tf_static``                          ``tf2_msgs/msg/TFMessage``               first frame, and
                                                                                 when it changes
``/facedepth/head_pose``                ``geometry_msgs/msg/PoseStamped``        head annotated
``/facedepth/prediction/depth8``        ``sensor_msgs/msg/Image`` (mono8)        from the app
``/facedepth/metrics``                  ``std_msgs/msg/String`` (JSON)           from the app
``/camera/color/image/compressed``      ``sensor_msgs/msg/CompressedImage``      every frame (JPEG,
                                                                                 or PNG: lossless)
``/camera/depth/image_raw``             ``sensor_msgs/msg/Image`` (16UC1, mm)    frames with depth
``/camera/depth_clean/image_raw``       ``sensor_msgs/msg/Image`` (16UC1, mm)    noise-free depth
                                                                                 (virtual sources)
``/facedepth/frame``                    ``std_msgs/msg/String`` (JSON)           every frame, last
======================================  =======================================  ==================

``/facedepth/frame`` is the frame's record and its commit mark: JSON with the frame's
``timestamp_ns``, ``index``, ``source``, ``head_center_mm`` with ``head_center_definition`` (the
project's skull centre; records without it were written before and are converted as
``sensors.locate.stored`` says), ``head_center_raw_mm`` (a dataset's own head point), ``head_rotation``,
``subject_id``, both cameras and ``depth_to_color`` (floats written with full precision, so annotations replay
bit-exactly). The tf transform's parent is ``color_optical_frame`` and its child
``depth_optical_frame`` (translation in metres), so it maps depth-camera points into the colour
camera; the head pose is in ``depth_optical_frame``, its orientation the annotated rotation
(identity when only the centre is known). Log times are wall-clock nanoseconds: the recording's
start time plus each frame's offset from the first frame; the difference to ``timestamp_ns`` is
stored in the ``facedepth.clock`` metadata record.

Every channel carries the metadata ``offered_qos_profiles``, a ROS 2 QoS profile list in YAML as
rosbag2 writes it (reliable, volatile, keep all; ``/tf_static`` transient-local, as its latched
publishers offer), so ``ros2 bag play`` republishes each topic with a QoS its subscribers match.

This module holds the topics, the message definitions and the conversion of frame parts to
messages; :mod:`sensors.recording.writer` writes them, :mod:`sensors.recording.replay` reads
them back.
"""
from __future__ import annotations

import math

import numpy as np

from sensors.geometry import CameraIntrinsics

FORMAT_VERSION = 1


def qos_profile_yaml(transient_local: bool = False) -> str:
    """An ``offered_qos_profiles`` value: one QoS profile in the YAML rosbag2 (Humble) writes.
    Enumerations as rclcpp numbers them: history 3 = unknown (keep all), reliability 1 =
    reliable, durability 1 = transient local / 2 = volatile, liveliness 1 = automatic; the
    durations are "infinite" spelt as rosbag2 spells them."""
    infinite = "\n    sec: 2147483647\n    nsec: 4294967295"
    return ("- history: 3\n  depth: 0\n  reliability: 1\n"
            f"  durability: {1 if transient_local else 2}\n"
            f"  deadline:{infinite}\n  lifespan:{infinite}\n  liveliness: 1\n"
            f"  liveliness_lease_duration:{infinite}\n  avoid_ros_namespace_conventions: false\n")

TOPIC_COLOR = "/camera/color/image/compressed"
TOPIC_COLOR_INFO = "/camera/color/camera_info"
TOPIC_DEPTH = "/camera/depth/image_raw"
TOPIC_DEPTH_INFO = "/camera/depth/camera_info"
TOPIC_DEPTH_CLEAN = "/camera/depth_clean/image_raw"
TOPIC_TF = "/tf_static"
TOPIC_HEAD = "/facedepth/head_pose"
TOPIC_PREDICTION = "/facedepth/prediction/depth8"
TOPIC_METRICS = "/facedepth/metrics"
TOPIC_FRAME = "/facedepth/frame"
COLOR_FRAME_ID = "color_optical_frame"
DEPTH_FRAME_ID = "depth_optical_frame"


# -- ROS 2 message definitions (ros2msg text with dependencies, as rosbag2 stores them) ----
_SEP = "=" * 80


def _msgdef(main: str, *deps: tuple[str, str]) -> str:
    parts = [main.strip()]
    for name, text in deps:
        parts.append(f"{_SEP}\nMSG: {name}\n{text.strip()}")
    return "\n".join(parts) + "\n"


_TIME = ("builtin_interfaces/Time", "int32 sec\nuint32 nanosec")
_HEADER = ("std_msgs/Header", "builtin_interfaces/Time stamp\nstring frame_id")
_VECTOR3 = ("geometry_msgs/Vector3", "float64 x\nfloat64 y\nfloat64 z")
_POINT = ("geometry_msgs/Point", "float64 x\nfloat64 y\nfloat64 z")
_QUAT = ("geometry_msgs/Quaternion", "float64 x 0\nfloat64 y 0\nfloat64 z 0\nfloat64 w 1")
_ROI = ("sensor_msgs/RegionOfInterest",
        "uint32 x_offset\nuint32 y_offset\nuint32 height\nuint32 width\nbool do_rectify")

SCHEMAS: dict[str, str] = {
    "sensor_msgs/msg/CompressedImage": _msgdef("std_msgs/Header header\nstring format\nuint8[] data",
                                               _HEADER, _TIME),
    "sensor_msgs/msg/Image": _msgdef(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring encoding\nuint8 is_bigendian\n"
        "uint32 step\nuint8[] data", _HEADER, _TIME),
    "sensor_msgs/msg/CameraInfo": _msgdef(
        "std_msgs/Header header\nuint32 height\nuint32 width\nstring distortion_model\nfloat64[] d\n"
        "float64[9] k\nfloat64[9] r\nfloat64[12] p\nuint32 binning_x\nuint32 binning_y\n"
        "sensor_msgs/RegionOfInterest roi", _HEADER, _TIME, _ROI),
    "tf2_msgs/msg/TFMessage": _msgdef(
        "geometry_msgs/TransformStamped[] transforms",
        ("geometry_msgs/TransformStamped",
         "std_msgs/Header header\nstring child_frame_id\ngeometry_msgs/Transform transform"),
        _HEADER, _TIME,
        ("geometry_msgs/Transform", "geometry_msgs/Vector3 translation\ngeometry_msgs/Quaternion rotation"),
        _VECTOR3, _QUAT),
    "geometry_msgs/msg/PoseStamped": _msgdef(
        "std_msgs/Header header\ngeometry_msgs/Pose pose", _HEADER, _TIME,
        ("geometry_msgs/Pose", "geometry_msgs/Point position\ngeometry_msgs/Quaternion orientation"),
        _POINT, _QUAT),
    "std_msgs/msg/String": _msgdef("string data"),
}


def rotation_to_quaternion(r: np.ndarray) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation matrix (the nearest rotation if it is slightly off)."""
    u, _, vt = np.linalg.svd(np.asarray(r, dtype=np.float64).reshape(3, 3))
    m = u @ vt
    if np.linalg.det(m) < 0:
        m = u @ np.diag([1.0, 1.0, -1.0]) @ vt
    t = np.trace(m)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        w, x, y, z = 0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        w, x, y, z = (m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * math.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        w, x, y, z = (m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s
    else:
        s = 2.0 * math.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        w, x, y, z = (m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s
    return float(x), float(y), float(z), float(w)


def time_msg(t_ns: int) -> dict:
    return {"sec": int(t_ns // 1_000_000_000), "nanosec": int(t_ns % 1_000_000_000)}


def camera_info_msg(cam: CameraIntrinsics, frame_id: str, t_ns: int) -> dict:
    """A ``sensor_msgs/CameraInfo`` of a camera (no rectification: the plain pinhole K)."""
    d = list(cam.distortion)
    return {
        "header": {"stamp": time_msg(t_ns), "frame_id": frame_id},
        "height": cam.height, "width": cam.width,
        "distortion_model": "rational_polynomial" if len(d) > 5 else "plumb_bob",
        "d": d,
        "k": [cam.fx, 0.0, cam.cx, 0.0, cam.fy, cam.cy, 0.0, 0.0, 1.0],
        "r": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
        "p": [cam.fx, 0.0, cam.cx, 0.0, 0.0, cam.fy, cam.cy, 0.0, 0.0, 0.0, 1.0, 0.0],
        "binning_x": 0, "binning_y": 0,
        "roi": {"x_offset": 0, "y_offset": 0, "height": 0, "width": 0, "do_rectify": False},
    }


def depth_image_msg(depth: np.ndarray, frame_id: str, t_ns: int) -> dict:
    """A ``sensor_msgs/Image`` (16UC1, little-endian) of a depth image in mm."""
    h, w = depth.shape
    return {"header": {"stamp": time_msg(t_ns), "frame_id": frame_id}, "height": h, "width": w,
            "encoding": "16UC1", "is_bigendian": 0, "step": 2 * w,
            "data": np.ascontiguousarray(depth, dtype="<u2").tobytes()}
