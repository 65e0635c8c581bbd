"""Head localisation (sensors/locate/locator.py): annotations, pose angles, "no face", smoothing rules.

Detection against the virtual Kinect's ground truth is at the end: a few frames in the default
run; the full measurement per yaw bin is ``launch.py evaluate-locator`` (README, "Head
localisation").
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from sensors.errors import ConfigError
from sensors.frame import Frame
from sensors.geometry import CameraIntrinsics, Extrinsics
from sensors.locate.locator import HeadLocation, HeadLocator, LocatorConfig, _OneEuro

COLOR = CameraIntrinsics(1081.4, 1081.4, 959.5, 539.5, 1920, 1080)
DEPTH = CameraIntrinsics(365.5, 365.5, 254.9, 205.4, 512, 424)
RIG = Extrinsics(np.eye(3), [52.0, 0.0, 0.0])


def _frame(index=0, head=None, rotation=None, depth=True, color=None, t_ns=0):
    color = np.full((1080, 1920, 3), 60, np.uint8) if color is None else color
    return Frame(
        index, t_ns, color, COLOR,
        np.full((424, 512), 2000, np.uint16) if depth else None, DEPTH if depth else None, RIG,
        head_center_mm=head, head_rotation=rotation,
    )


def test_annotation_is_moved_to_colour_coordinates_and_never_smoothed():
    loc = HeadLocator(live=True)
    for i, x in enumerate([0.0, 40.0, -40.0]):
        got = loc.locate(_frame(i, head=[x, 10.0, 1000.0], t_ns=i * 33_000_000))
        assert got.method == "annotation" and got.face_box_px is None
        np.testing.assert_allclose(got.center_color_mm, [x + 52.0, 10.0, 1000.0])  # exact, no lag
        assert got.distance_mm == 1000.0


def test_no_face_is_none_not_an_exception():
    for mode in ("auto", "detect"):
        for depth in (True, False):
            assert HeadLocator(LocatorConfig(mode=mode)).locate(_frame(depth=depth)) is None
    # annotation-only mode: a frame without an annotation has no face
    assert HeadLocator(LocatorConfig(mode="annotation")).locate(_frame()) is None
    # detect mode ignores an annotation
    assert HeadLocator(LocatorConfig(mode="detect")).locate(_frame(head=[0, 0, 1000.0])) is None


def test_config_is_validated():
    with pytest.raises(ConfigError, match="mode"):
        LocatorConfig(mode="magic")
    with pytest.raises(ConfigError):
        LocatorConfig(face_box_mm=0)
    with pytest.raises(ConfigError):
        LocatorConfig(detect_width_px=10)


def test_head_location_is_read_only():
    loc = HeadLocation(np.array([1.0, 2.0, 900.0]), "color")
    assert loc.distance_mm == 900.0
    with pytest.raises(ValueError):
        loc.center_color_mm[0] = 5.0


def test_one_euro_filter_is_causal_steady_and_follows_motion():
    f = _OneEuro(min_cutoff_hz=1.0, beta=0.02)
    rng = np.random.default_rng(1)
    truth = np.array([0.0, 0.0, 1000.0])
    out = [f(truth + rng.normal(0, 3.0, 3), i * 33_333_333) for i in range(60)]
    # jitter of 3 mm is damped to well under half
    assert np.std(np.array(out[20:])[:, 0]) < 1.5
    # a steady walk at 300 mm/s is followed with a small lag
    f.reset()
    for i in range(60):
        y = f(np.array([i * 10.0, 0.0, 1000.0]), i * 33_333_333)
    assert abs(y[0] - 590.0) < 40.0
    # causal: the output at a time depends only on the inputs up to it
    f1, f2 = _OneEuro(1.0, 0.02), _OneEuro(1.0, 0.02)
    xs = [np.array([float(v), 0.0, 0.0]) for v in rng.normal(0, 5, 30)]
    a = [f1(x, i * 33_333_333) for i, x in enumerate(xs)]
    b = [f2(x, i * 33_333_333) for i, x in enumerate(xs[:15])]
    np.testing.assert_allclose(a[:15], b)


# --------------------------------------------------------------------------------------------
# detection on the virtual Kinect, scored against its ground truth


def _virtual(uri):
    from sensors.source import open_source

    return open_source(uri)


def test_a_face_the_cascades_miss_is_found_in_depth():
    """Colour blanked out: no face for the detector, but the head on its shoulders is in depth."""
    from models.evaluation.locator import score_frame
    from sensors.crop import CropConfig

    loc = HeadLocator(LocatorConfig(mode="detect"))
    with _virtual("virtual:seed=21,subject=500,pace=off") as src:
        for yaw, roll in ((0.0, 0.0), (20.0, 25.0), (-25.0, -10.0)):
            frame = src.render_posed(500, yaw_deg=yaw, roll_deg=roll, distance_m=1.0)
            blank = Frame(frame.index, frame.timestamp_ns, np.zeros_like(frame.color), frame.color_camera,
                          frame.depth_mm, frame.depth_camera, frame.depth_to_color,
                          head_center_mm=frame.head_center_mm, head_rotation=frame.head_rotation)
            got = loc.locate(blank)
            assert got is not None and got.method == "depth", (yaw, roll)
            x, y, w, h = got.face_box_px  # a box where a frontal face of that head would be
            u, v = frame.color_camera.project(frame.head_center_color_mm()[None])[0]
            assert x < u < x + w and y < v < y + h + 0.5 * h
            row = score_frame(blank, loc, CropConfig())
            assert row.error_px <= 6.0 and abs(row.distance_error_mm) < 30.0, (yaw, roll, row)


def test_colour_and_depth_detection_centres_the_crop_on_unseen_people():
    """A calm sequence of people the head-shape model was not fitted on: the located crop's
    centre lies within 5 crop pixels of the true head centre on most frames (the README's table
    is the full measurement)."""
    from models.evaluation.locator import score_frame, summarise
    from sensors.crop import CropConfig

    loc = HeadLocator(LocatorConfig(mode="detect"))
    rows = []
    with _virtual("virtual:seed=23,subjects=600-601,sequence=calm,sequence_frames=60,pace=off") as src:
        for i in range(0, 120, 6):
            rows.append(score_frame(src.render(i), loc, CropConfig()))
    summary = summarise(rows)
    assert summary["all"]["found_rate"] == 1.0
    assert summary["all"]["within_rate"] >= 0.9, summary["all"]
    assert summary["all"]["error_px_median"] < 5.0


def test_locator_summary_on_hand_made_rows():
    from models.evaluation.locator import LocatedFrame, summarise

    rows = [LocatedFrame(0, 5.0, 1.0, 3.0, "color+depth"), LocatedFrame(1, -10.0, 7.0, -8.0, "depth"),
            LocatedFrame(2, 20.0, math.inf, math.nan, "none"), LocatedFrame(3, -40.0, 2.0, 1.0, "depth")]
    s = summarise(rows, radius_px=5.0)
    assert s["all"]["frames"] == 4 and s["all"]["within_rate"] == 0.5 and s["all"]["found_rate"] == 0.75
    assert s["yaw_le_30"]["frames"] == 3 and s["yaw_le_30"]["within_rate"] == pytest.approx(1 / 3)
    assert s["yaw_le_30"]["error_px_median"] == 4.0  # of the found frames: 1 and 7
    assert s["yaw_le_30"]["distance_error_mm_median"] == 5.5  # |3| and |-8|
    assert list(s["by_abs_yaw_deg"]) == ["0-15", "15-30", "30-45"]
    assert s["by_abs_yaw_deg"]["15-30"] == {"frames": 1, "within_rate": 0.0, "found_rate": 0.0,
                                            "error_px_median": None, "error_px_p95_found": None,
                                            "distance_error_mm_median": None}
    assert s["methods"] == {"color+depth": 1, "depth": 2, "none": 1}


def test_colour_only_frames_get_a_distance_from_the_face_size():
    """Webcams and photos: no depth, so the detector's box and the focal length give the distance
    and the crop still follows w = f R / D. Scored against the virtual Kinect's ground truth on
    frontal heads (turned ones are further off: 11 and 15 crop px at 10 and 20 degrees of yaw,
    README "Head localisation")."""
    from models.evaluation.locator import score_frame
    from sensors.crop import CropConfig

    loc = HeadLocator(LocatorConfig(mode="detect", use_rotation=False))  # a photo has no head pose
    with _virtual("virtual:seed=21,subject=501,pace=off") as src:
        for yaw, distance_m in ((0.0, 0.6), (0.0, 1.0), (0.0, 1.5)):
            f = src.render_posed(501, yaw_deg=yaw, distance_m=distance_m)
            photo = Frame(f.index, f.timestamp_ns, f.color, f.color_camera,
                          head_center_mm=f.head_center_color_mm(), head_rotation=f.head_rotation)
            row = score_frame(photo, loc, CropConfig())
            assert row.method == "color", (yaw, distance_m)
            assert row.error_px <= 8.0 and abs(row.distance_error_mm) < 0.12 * 1000 * distance_m, (yaw, distance_m, row)


def _two_faces():
    """A colour-only frame with two faces: a virtual person at 0.8 m and a 0.7x copy of their
    face further right (smaller: further away), on a plain backdrop."""
    import cv2

    with _virtual("virtual:seed=21,subject=501,pace=off,room=none") as src:
        f = src.render_posed(501, yaw_deg=0.0, distance_m=0.8)
    u, v = f.color_camera.project(f.head_center_color_mm()[None])[0]
    img = f.color.copy()
    half = int(f.color_camera.fx * 130 / 800)
    patch = img[int(v) - half:int(v) + half, int(u) - half:int(u) + half]
    small = cv2.resize(patch, None, fx=0.7, fy=0.7, interpolation=cv2.INTER_AREA)
    x0, y0 = int(u) + 500, int(v) - small.shape[0] // 2
    img[y0:y0 + small.shape[0], x0:x0 + small.shape[1]] = small
    near = (u, v)
    far = (x0 + small.shape[1] / 2, y0 + small.shape[0] / 2)
    return img, f.color_camera, near, far


def test_live_tracker_takes_the_nearest_face_switches_on_click_and_redetects_when_lost():
    img, cam, near, far = _two_faces()
    frame = lambda i, color=img: Frame(i, i * 33_000_000, color, cam)  # noqa: E731

    def box_centre(loc):
        x, y, w, h = loc.face_box_px
        return x + w / 2, y + h / 2

    loc = HeadLocator(LocatorConfig(mode="detect"), live=True)
    first = loc.locate(frame(0))
    assert first.method == "color" and math.dist(box_centre(first), near) < 60  # the nearest (largest) face
    loc.select(far)                                         # the user clicks the other face
    for i in (1, 2, 3):                                     # and it stays tracked (searched near its last place)
        got = loc.locate(frame(i))
        assert got is not None and math.dist(box_centre(got), far) < 40, i
    blank = np.full_like(img, 90)
    for i in (4, 5, 6, 7):                                  # the face leaves: "no face", not an exception
        assert loc.locate(frame(i, blank)) is None
    # lost, so the whole frame is searched again, every SEARCH_EVERY_S (0.25 s) while none is found:
    # the last search was at frame 4, the next at frame 12 (0.264 s later)
    back = [loc.locate(frame(i)) for i in range(8, 14)]
    assert [b is not None for b in back] == [False] * 4 + [True] * 2
    assert math.dist(box_centre(back[4]), near) < 60


def test_frames_that_are_not_consecutive_start_the_tracking_afresh():
    img, cam, near, far = _two_faces()

    def centre_at(loc, t_ns):
        x, y, w, h = loc.locate(Frame(0, t_ns, img, cam)).face_box_px
        return x + w / 2, y + h / 2

    for t_next in (0, 3_000_000_000):  # a seek back in time, a gap of 2 s
        loc = HeadLocator(LocatorConfig(mode="detect"), live=True)
        centre_at(loc, 1_000_000_000)
        loc.select(far)
        assert math.dist(centre_at(loc, 1_033_000_000), far) < 40   # the chosen face, tracked
        assert math.dist(centre_at(loc, t_next), near) < 60          # not consecutive: the nearest again


def test_head_shape_constants_are_data_read_exactly_and_refused_by_name_when_broken(tmp_path):
    from sensors.errors import FormatError
    from sensors.locate.silhouette import load_head_shape, save_head_shape

    shipped = load_head_shape()
    assert shipped.v_coef.dtype == np.float64
    assert shipped.v_coef.tolist() == [89.909, 0.060, -0.006, 0.126, 0.003] and shipped.z_behind_front_mm == 106.0
    copy = tmp_path / "head_shape.json"
    save_head_shape(copy, shipped, made_by="a test")
    again = load_head_shape(copy)
    assert again.v_coef.tolist() == shipped.v_coef.tolist() and again.z_behind_front_mm == shipped.z_behind_front_mm
    for text in ("{", '{"v_coef": [1, 2], "z_behind_front_mm": 1}', '{"v_coef": [1, 2, 3, 4, 5]}'):
        copy.write_text(text)
        with pytest.raises(FormatError) as info:
            load_head_shape(copy)
        assert info.value.path == str(copy) and "\n" not in str(info.value)
    with pytest.raises(FormatError, match="cannot read"):
        load_head_shape(tmp_path / "missing.json")


def test_fit_shape_writes_a_file_the_locator_reads(tmp_path, capsys):
    import launch
    from sensors.locate.silhouette import load_head_shape

    out = tmp_path / "fitted.json"
    source = "virtual:seed=11,subjects=300-303,sequence=mixed,frames=40"
    assert launch.main(["evaluate-locator", "--fit-shape", "--every", "1", "--quiet", "--source", source,
                        "--out", str(out)]) == 0
    assert "heads: 40" in capsys.readouterr().out
    fitted = load_head_shape(out)
    assert fitted.v_coef.shape == (5,) and 80.0 < fitted.z_behind_front_mm < 130.0
    assert launch.main(["evaluate-locator", "--out", str(out)]) == 2  # --out only goes with --fit-shape


def test_a_fresh_detection_with_depth_looks_only_where_the_depth_image_shows_a_head(monkeypatch):
    """A frame with depth and no track: the cascades run only around the depth search's head
    candidates (never over the whole frame), and the head found is the annotated one."""
    from models.evaluation.locator import score_frame
    from sensors.crop import CropConfig
    from sensors.locate import locator as locator_module

    loc = HeadLocator(LocatorConfig(mode="detect"))
    searched: list[tuple] = []
    near = loc._detect_near

    def spy(frame, box, *args, **kw):
        searched.append(box)
        return near(frame, box, *args, **kw)

    monkeypatch.setattr(loc, "_detect_near", spy)
    monkeypatch.setattr(loc, "_detect_full", lambda frame: pytest.fail("the whole frame was searched"))
    with _virtual("virtual:seed=21,subject=502,pace=off") as src:
        for yaw, distance_m in ((0.0, 0.8), (15.0, 1.2), (-20.0, 1.6)):
            frame = src.render_posed(502, yaw_deg=yaw, distance_m=distance_m)
            searched.clear()
            row = score_frame(frame, loc, CropConfig())
            assert row.method == "color+depth" and 1 <= len(searched) <= locator_module.PROPOSALS, (yaw, searched)
            assert row.error_px <= 5.0 and abs(row.distance_error_mm) < 30.0, (yaw, distance_m, row)
            # each searched region is the face a candidate implies: about the true face's size and place
            true_box = locator_module.face_box_for(frame.color_camera, frame.head_center_color_mm(), loc.config)
            x, y, w, h = min(searched, key=lambda b: math.dist(b[:2], true_box[:2]))
            assert abs(w / true_box[2] - 1) < 0.3 and math.dist((x, y), true_box[:2]) < 0.6 * true_box[2]


def _photo():
    import cv2
    import matplotlib
    from pathlib import Path

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return path, cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def test_live_without_a_face_the_whole_frame_is_searched_every_quarter_second(monkeypatch):
    """A colour-only video with no face in view: the whole-frame search runs once per
    SEARCH_EVERY_S of the video's time and the frames between are passed over, so playback keeps
    its rate; a face that comes into view is found by the next search."""
    from sensors.locate import colour

    widths: list[int] = []
    gray = colour.detection_gray
    monkeypatch.setattr("sensors.locate.locator.detection_gray",
                        lambda c, s: widths.append(round(c.shape[1] * s)) or gray(c, s))
    loc = HeadLocator(LocatorConfig(mode="detect"), live=True)
    empty = np.full((1080, 1920, 3), 90, np.uint8)
    frame_ns = 33_333_333  # 30 fps
    searched = []
    for i in range(16):
        widths.clear()
        assert loc.locate(Frame(i, i * frame_ns, empty, COLOR)) is None
        searched.append(bool(widths))
    assert [i for i, f in enumerate(searched) if f] == [0, 8]  # 0 s and 0.27 s
    _, img = _photo()
    face = empty.copy()
    face[300:300 + img.shape[0], 700:700 + img.shape[1]] = img
    found = [loc.locate(Frame(16 + i, (16 + i) * frame_ns, face, COLOR)) for i in range(8)]
    assert found[0] is not None  # 0.27 s after the last search: searched again
    loc.reset()
    assert loc.locate(Frame(0, 0, empty, COLOR)) is None and loc.locate(Frame(1, frame_ns, face, COLOR)) is None
    loc.select((1000.0, 600.0))  # choosing a face searches at once
    assert loc.locate(Frame(2, 2 * frame_ns, face, COLOR)) is not None


def test_a_real_photo_is_found_coarse_and_a_small_face_by_the_fine_search(monkeypatch):
    """Colour only (photos, webcams): the coarse image finds Grace Hopper's face, placed by the
    search around it; the same photo shrunk in a large frame (a face too small for the coarse
    image) is found by the fine whole-frame search."""
    import cv2

    from sensors.locate import colour

    _, img = _photo()
    cam = CameraIntrinsics(700.0, 700.0, img.shape[1] / 2, img.shape[0] / 2, img.shape[1], img.shape[0])
    widths: list[int] = []
    gray = colour.detection_gray
    monkeypatch.setattr("sensors.locate.locator.detection_gray",
                        lambda c, s: widths.append(round(c.shape[1] * s)) or gray(c, s))
    loc = HeadLocator(LocatorConfig(mode="detect"))
    got = loc.locate(Frame(0, 0, img, cam))
    assert got is not None and got.method == "color"
    x, y, w, h = got.face_box_px  # her face: the middle of the portrait's upper half, about 230 px wide
    assert 0.3 < (x + w / 2) / img.shape[1] < 0.7 and 0.25 < (y + h / 2) / img.shape[0] < 0.55 and 150 < w < 320
    assert widths[0] == loc.config.coarse_width_px and loc.config.detect_width_px not in widths

    big = np.full((1080, 1920, 3), 90, np.uint8)
    # her face about 115 px wide: 19 px in the 320-px coarse image (below the 20 px searched), 38 in the 640-px one
    small = cv2.resize(img, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    big[400:400 + small.shape[0], 900:900 + small.shape[1]] = small
    widths.clear()
    got = loc.locate(Frame(1, 0, big, COLOR))
    assert got is not None and loc.config.detect_width_px in widths
    x, y, w, h = got.face_box_px
    assert 900 + 0.3 * small.shape[1] < x + w / 2 < 900 + 0.7 * small.shape[1] and 80 < w < 160


def test_real_photos_are_framed_like_the_virtual_crops(tmp_path):
    """The real-photo measurement (README, "Head localisation"): Grace Hopper's portrait, located
    from colour alone, gives a crop whose face sits where faces sit on virtual crops."""
    from models.evaluation.locator import DEFAULT_SOURCE
    from models.evaluation.photos import MAX_OFFSET, MAX_SIZE_ERROR, evaluate_photos
    from sensors.crop import CropConfig

    path, _ = _photo()
    report = evaluate_photos([str(path)], DEFAULT_SOURCE, 3, 450, CropConfig())
    assert report["reference"]["crops_with_face"] >= 10
    row = report["photos"][0]
    assert row["located"] and row["face_in_crop"], row
    assert row["offset"] <= MAX_OFFSET and abs(row["size_error"]) <= MAX_SIZE_ERROR, row


def test_evaluate_locator_photos_names_a_missing_photo(tmp_path, capsys):
    import launch

    missing = tmp_path / "nobody.jpg"
    assert launch.main(["evaluate-locator", "--photos", str(missing), "--quiet"]) != 0
    assert "nobody.jpg" in capsys.readouterr().err
