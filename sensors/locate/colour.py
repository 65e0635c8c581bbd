"""Faces in a colour image: OpenCV's bundled Haar cascades (frontal, and both profiles)."""
from __future__ import annotations

import numpy as np

from sensors.errors import SensorError


class FaceDetector:
    """OpenCV's Haar cascades (frontal, and left and right profiles) on a grey image."""

    def __init__(self) -> None:
        import cv2

        self._cv2 = cv2
        base = cv2.data.haarcascades
        self._frontal = cv2.CascadeClassifier(base + "haarcascade_frontalface_alt2.xml")
        self._profile = cv2.CascadeClassifier(base + "haarcascade_profileface.xml")
        if self._frontal.empty() or self._profile.empty():
            raise SensorError("OpenCV's bundled face cascades are missing (opencv-python 4.x ships them)", base)

    def detect(self, gray: np.ndarray, min_px: int, max_px: int | None = None,
               scale_factor: float = 1.1) -> list[tuple[int, int, int, int]]:
        """Face boxes (x, y, w, h) in ``gray``'s pixels; frontal first, profiles if none.
        ``scale_factor``: the step between searched face sizes (1.2 searches about half as many)."""
        cv2 = self._cv2
        h, w = gray.shape
        if min(h, w) < min_px:
            return []
        kw = dict(scaleFactor=scale_factor, minNeighbors=4, minSize=(min_px, min_px))
        if max_px is not None:
            kw["maxSize"] = (max_px, max_px)
        boxes = [tuple(int(v) for v in b) for b in self._frontal.detectMultiScale(gray, **kw)]
        if boxes:
            return boxes
        boxes = [tuple(int(v) for v in b) for b in self._profile.detectMultiScale(gray, **kw)]
        flipped = cv2.flip(gray, 1)
        for x, y, bw, bh in self._profile.detectMultiScale(flipped, **kw):
            boxes.append((int(w - x - bw), int(y), int(bw), int(bh)))
        return boxes  # type: ignore[return-value]


def detection_gray(color: np.ndarray, scale: float) -> np.ndarray:
    """The RGB image scaled by ``scale`` (area-averaged when it shrinks), grey, histogram-equalised."""
    import cv2

    if scale < 1.0:
        h, w = color.shape[:2]
        small = cv2.resize(color, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        small = color
    return cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
