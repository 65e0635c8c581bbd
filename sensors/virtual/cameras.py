"""The simulated Kinect v2's cameras: typical factory intrinsics and the depth-to-colour extrinsic.

A real Kinect v2 reports its own calibration; these are typical values of the device family, so
code written for the real sensor serves the virtual one unchanged.
"""
from __future__ import annotations

import numpy as np

from sensors.geometry import CameraIntrinsics, Extrinsics, rot_x, rot_y, rot_z

#: the time-of-flight depth camera, 512x424
DEPTH_CAMERA = CameraIntrinsics(fx=365.5, fy=365.5, cx=254.9, cy=205.4, width=512, height=424)
#: the colour camera, 1920x1080
COLOR_CAMERA = CameraIntrinsics(fx=1081.4, fy=1081.4, cx=959.5, cy=539.5, width=1920, height=1080)

#: frames per second of both streams
FPS = 30.0

#: the depth camera's valid range in mm (outside it a Kinect v2 reports 0)
MIN_RANGE_MM = 500.0
MAX_RANGE_MM = 4500.0


#: depth-camera point p -> colour-camera point R p + t (mm): the colour lens sits 52 mm to the
#: side of the depth lens, with a small residual rotation as a factory calibration reports it
DEPTH_TO_COLOR = Extrinsics(rot_z(np.radians(0.1)) @ rot_y(np.radians(-0.25)) @ rot_x(np.radians(0.15)),
                            np.array([52.0, 0.0, 0.0]))
