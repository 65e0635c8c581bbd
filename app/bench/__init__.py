"""How fast the app is on this machine, in a form anyone can rerun (``launch.py bench``).

    python launch.py bench                          # the full run (a few minutes)
    python launch.py bench --quick --report b.json  # the short run the test suite uses
    python launch.py bench --model my.onnx --recording my_session.mcap --soak 10000

Everything is measured after warm-up, as p50 / p95 / p99 and the mean of many runs, with the
process CPU time beside the wall time (on a shared machine other jobs disturb wall-clock
timings; CPU time shows what the work itself cost):

1. **A Kinect v2-sized recording with annotations.** The virtual Kinect (1920x1080 colour,
   512x424 depth, head centres) is recorded to a temporary MCAP file (``--frames``; 100 with
   ``--quick``, 3000 otherwise), the way ``launch.py record`` records a sensor: no noise-free
   depth, JPEG colour. ``--recording FILE.mcap`` benchmarks a recording of your own instead.
2. **Each stage** on frames of that recording: decoding a recorded colour frame (full 1080p,
   and OpenCV's reduced-resolution decoding at half size, with the head distances at which
   the crop would lose nothing by it), reading a whole frame from the recording, registering
   the depth of the crop window, head localisation (annotation; face detection afresh; live
   tracking), the crop, the 8-bit encoding, the generator, the metrics, a verifier pair and
   writing a frame to a recording (the recorder thread's cost per frame).
3. **The generator**: ONNX Runtime on every provider that really loads, batch 1 and 32, with
   the live app's setting (1 intra-op thread) and ONNX Runtime's default; PyTorch eager at
   its default settings (and with 1 thread) on the same crops, batch 1 and 32 (1 only with
   ``--quick``), run by ``python -m models.generator.bench_torch`` in its own process (the app never
   imports torch) from the ``.pt`` checkpoint beside the ``.onnx`` file (or ``--checkpoint``;
   its output is compared with ONNX Runtime's), else from the architecture in the ONNX
   metadata with random weights (same cost), else reported as not available.
4. **The whole headless pipeline** (``app.pipeline.Pipeline``: capture thread, inference
   thread, the generator, metrics and the verifier when there is one) in a separate process,
   so that its memory is the app's alone: the recording replayed as fast as possible (frames
   per second on the wall clock; the threaded pipeline, and ``step()`` on one thread), and
   replayed the way a sensor delivers frames at the recorded 30 fps: each frame is stamped
   when it is due (the moment a sensor would capture it), reading and decoding it count as
   the app's work, and capture-to-result latency and dropped frames (frames the pipeline
   never processed: overwritten in its mailbox or already stale when read) are reported.
5. **Memory**: the pipeline process's peak resident memory (:func:`peak_rss_mb`) and how much
   its resident memory grew after warm-up; ``--soak N`` adds an N-frame run (the recording
   looped) for the flat-memory target.

Wall-clock timings of a stage stop early after ``BenchPlan.max_s`` seconds, so a busy machine
cannot stretch a run without bound; the run counts are in the report.

The JSON report (``--report``) holds, among the rest, ``generator.onnx_ms_p50`` (CPU, batch 1,
1 thread), ``generator.torch_ms_p50``, ``pipeline.fps``, ``pipeline.latency_ms_p99``,
``pipeline.dropped``, ``memory.peak_mb``, ``memory.rss_growth_mb``, per-stage
``stages.<name>.ms_p50`` / ``ms_p95`` / ``ms_p99`` / ``ms_mean`` / ``cpu_ms_mean`` / ``runs``,
``targets`` (each with its value and whether it is met), ``machine`` (CPU model, cores, GPU,
load average before and after), ``commit`` and ``date``.

``launch.py bench --video`` measures something else instead, video playback: a synthetic
960x540 30 fps clip and a photo folder played headless (paced and unpaced) and in the window,
against the video targets (``video``).

Modules: ``plan`` (stages, plans, targets), ``timing`` (percentiles, the machine, memory),
``recording`` (the recording and its sample), ``stages``, ``generator`` and ``pipeline``
(the three kinds of measurement), ``video`` (video playback), ``report`` (targets and tables),
``run`` (one whole run), ``__main__`` (the pipeline worker process).
"""
