"""The ``launch.py bench`` report: the targets met or missed, and the plain-text tables."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.bench.plan import (TARGET_FPS, TARGET_GENERATOR_MS, TARGET_GPU_CROPS_PER_S, TARGET_LATENCY_P99_MS,
                            TARGET_RSS_GROWTH_MB)


def targets(report: dict[str, Any], soak: int) -> dict[str, Any]:
    """Each performance target (docs/design.md, "Targets") with the measured value and whether it is
    met (None: not measured)."""
    import operator

    pipe, gen, mem = report["pipeline"], report["generator"], report["memory"]
    paced = f"30 fps pacing over {pipe.get('paced_frames_total')} frames (the target asks for 3000)"
    soaked = f" and a {soak}-frame soak" if soak else " (the target asks for 10,000 frames: --soak 10000)"

    def entry(value: Any, compare: Callable[[Any, Any], bool], target: float, note: str) -> dict[str, Any]:
        return {"value": value, "target": target, "met": None if value is None else bool(compare(value, target)),
                "note": note}

    return {
        "pipeline_fps>=90": entry(pipe["fps"], operator.ge, TARGET_FPS,
                                  "threaded pipeline, recording replayed as fast as possible"),
        "latency_p99_ms<=20": entry(pipe["latency_ms_p99"], operator.le, TARGET_LATENCY_P99_MS, paced),
        "dropped==0": entry(pipe["dropped"], operator.eq, 0, paced),
        "generator_ms_p50<=3": entry(gen["onnx_ms_p50"], operator.le, TARGET_GENERATOR_MS,
                                     "ONNX Runtime, CPU, 1 thread, batch 1"),
        "rss_growth_mb<50": entry(mem["rss_growth_mb"], operator.lt, TARGET_RSS_GROWTH_MB,
                                  "largest growth after warm-up over the pipeline runs" + soaked),
        "gpu_crops_per_s_batch32>=5000": entry(gen.get("gpu_crops_per_s_batch32"), operator.ge, TARGET_GPU_CROPS_PER_S,
                                               "only on a machine where a GPU provider loads"),
    }


def format_table(report: dict[str, Any]) -> str:
    """The report as plain-text tables."""
    m = report["machine"]
    lines = [
        f"facedepth bench{' (quick)' if report['quick'] else ''}: {report['date']}, commit {report['commit']}",
        f"machine: {m['cpu']}, {m['cores']} cores ({m['cores_usable']} usable), "
        f"{'GPU: ' + ', '.join(m['gpu']) if m['gpu'] else 'no GPU'}; load average "
        f"{'/'.join(str(x) for x in m['load_average_before'])} before, "
        f"{'/'.join(str(x) for x in m['load_average_after'])} after",
    ]
    rec = report["inputs"]["recording"]
    lines.append(f"recording: {rec['frames']} frames, colour {rec['color_size']}, depth {rec['depth_size']}, "
                 f"{rec['annotated_frames']} annotated ({rec['recorded_from']})")
    lines.append(f"model: {report['inputs']['model']} ({report['inputs']['model_kind']}, crop "
                 f"{report['inputs']['crop']['size_px']} px); verifier: {report['inputs']['verifier'] or 'none'}")
    lines.append("")
    head = f"{'stage':<24} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'cpu ms':>8} {'runs':>6}"
    lines += [head, "-" * len(head)]

    def row(name: str, s: dict[str, Any]) -> str:
        if not s.get("ms_p50") and s.get("available") is False:
            return f"{name:<24} {'n/a: ' + s['reason']}"
        cpu = s.get("cpu_ms_mean")
        return (f"{name:<24} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s['ms_mean']:>8.3f} "
                f"{'-' if cpu is None else f'{cpu:.3f}':>8} {s['runs']:>6}")

    for name, s in report["stages"].items():
        lines.append(row(name, s))
    lines.append("")
    lines.append(f"{'generator':<34} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'cpu ms':>8} {'crops/s':>9}")
    gen = report["generator"]
    for key, s in gen["runs"].items():
        lines.append(f"{'onnx ' + key:<34} {s['ms_p50']:>8.3f} {s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} "
                     f"{s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
    t = gen["torch"]
    if t.get("available") is False:
        lines.append(f"{'torch eager':<34} n/a: {t['reason']}")
    else:
        for key, s in t["runs"].items():
            lines.append(f"{'torch eager ' + key.replace('default', 'default=' + str(t['threads'])):<34} {s['ms_p50']:>8.3f} "
                         f"{s['ms_p95']:>8.3f} {s['ms_p99']:>8.3f} {s.get('cpu_ms_mean', 0):>8.3f} {s['crops_per_s']:>9.0f}")
        if "max_abs_diff_vs_onnx" in t:
            lines.append(f"  torch vs onnx output: max |difference| {t['max_abs_diff_vs_onnx']:.2e} ({t['weights']} weights)")
        else:
            lines.append(f"  torch weights: {t['weights']}")
    for name, state in gen["providers"].items():
        lines.append(f"  {name}: {state}")
    lines.append("")
    p = report["pipeline"]
    lines.append("pipeline (separate process, provider " + str(p["provider"]) + ")")
    lines.append(f"  as fast as possible, threaded: {p['fps']} fps ({p['fast']['frames']} frames in "
                 f"{p['fast']['elapsed_s']:.2f} s, {p['fast']['faces']} with a face)")
    th = p["fast"]["thread_cpu_ms_per_frame"]
    lines.append(f"    CPU per frame {p['fast']['cpu_ms_per_frame']} ms"
                 + (" (" + ", ".join(f"{k.removeprefix('facedepth-')} thread {v}" for k, v in th.items()) + ")"
                    if th else ""))
    lines.append(f"  as fast as possible, one thread (step): {p['sync']['fps']} fps, CPU per frame "
                 f"{p['sync']['cpu_ms_per_frame']} ms")
    pc = p["paced"]
    lines.append(f"  30 fps, as a sensor delivers: latency p50/p95/p99 {pc.get('latency_ms_p50', 0):.1f} / "
                 f"{pc.get('latency_ms_p95', 0):.1f} / {pc.get('latency_ms_p99', 0):.1f} ms, dropped {pc['dropped']} of "
                 f"{pc['frames_total']}")
    for stage, s in p["fast"]["stages"].items():
        if "ms_p50" in s:
            lines.append(f"    in the pipeline {stage:<8} p50 {s['ms_p50']:.2f} ms, p99 {s['ms_p99']:.2f} ms")
    mem = report["memory"]
    lines.append(f"memory: peak {mem['peak_mb']} MB (pipeline process), growth after warm-up {mem['rss_growth_mb']} MB"
                 + (f", soak {mem['soak_frames']} frames: {mem['soak_growth_mb']} MB" if mem.get("soak_frames") else ""))
    lines.append("")
    lines.append("targets")
    for name, tg in report["targets"].items():
        state = {True: "met", False: "MISSED", None: "not measured"}[tg["met"]]
        lines.append(f"  {name:<32} {str(tg['value']):>10}  {state}  ({tg['note']})")
    return "\n".join(lines)
