"""Live devices: the Kinect v2 (libfreenect2) and webcams (OpenCV), and colour-camera calibration files.
"""
