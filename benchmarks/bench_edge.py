"""Edge speed and memory, measured side by side in one run (issue 4's targets).

Prints, for the 768x432 example clip at 5 analyses per second:
- decode-only frames/s (every frame grabbed, nothing converted or analysed: the cost no
  analysis can avoid), the whole pipeline's frames/s with the object stage (decode, read
  the luma plane of each analysed frame, analyse, infer, decode again in colour the
  frames with motion, detect in regions around it, track, decide, publish to a
  discarding publisher), and their ratio (target >= 0.6); each pair is measured back to
  back and the median ratio is reported with the range, since a shared 2-core machine
  is noisy; detector calls per analysed frame and milliseconds per call;
- the same pipeline saving annotated snapshots, and the zone on motion alone (the
  trained model's events, no detector);
- a straightforward OpenCV loop (read every frame, MOG2 on each analysed frame at full
  size) for comparison;
- inference time per window for the int8 and float TFLite models (and ONNX if the
  bundle has one);
- resident memory after each of several replays of the clip with detection (no growth
  expected).

``BENCH_PAIRS`` (default 3) sets the pairs with detection, ``BENCH_FAST_PAIRS`` (default 9)
the others: one replay with detection takes about a minute on a loaded 2-core machine.

Run: `.venv/bin/python benchmarks/bench_edge.py` (or `make bench`).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_component.analysis.features import N_FEATURES  # noqa: E402
from edge_component.camera import CameraPipeline  # noqa: E402
from edge_component.config import parse_config  # noqa: E402
from edge_component.events.snapshots import SnapshotStore  # noqa: E402
from edge_component.model.bundle import load_bundle  # noqa: E402
from edge_component.model.litert import Scorer  # noqa: E402

CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
BUNDLE = REPO / "edge_component" / "models" / "seed"
REPEAT = int(os.environ.get("BENCH_PAIRS", "3"))  # decode/pipeline pairs with detection
REPEAT_SLOW = 2  # the snapshot runs with detection
REPEAT_FAST = int(os.environ.get("BENCH_FAST_PAIRS", "9"))  # motion-only and MOG2 runs, each beside a decode run


class Discard:
    def publish(self, topic, message):
        pass

    def close(self):
        pass


def rss_mib() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def decode_only() -> float:
    cap = cv2.VideoCapture(str(CLIP), cv2.CAP_FFMPEG)
    n, t0 = 0, time.perf_counter()
    while cap.grab():
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return n / dt


def naive_mog2(detection_fps: float = 5.0) -> float:
    cap = cv2.VideoCapture(str(CLIP), cv2.CAP_FFMPEG)
    step = max(1, round(cap.get(cv2.CAP_PROP_FPS) / detection_fps))
    mog = cv2.createBackgroundSubtractorMOG2()
    n, t0 = 0, time.perf_counter()
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        if n % step == 0:
            mask = mog.apply(frame)
            cv2.findContours((mask == 255).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        n += 1
    dt = time.perf_counter() - t0
    cap.release()
    return n / dt


LAST: dict[str, object] = {}  # the last report per pipeline


def pipeline(detector: CameraPipeline, camera) -> float:
    t0 = time.perf_counter()
    report = detector.run_replay(camera)  # opening and the luma check included
    LAST[id(detector)] = report
    return report.stats.frames_in / (time.perf_counter() - t0)


def inference_ms(scorer: Scorer, rows: np.ndarray) -> float:
    scorer.score(rows[:10])  # warm up
    t0 = time.perf_counter()
    for row in rows:
        scorer.score(row)
    return 1000 * (time.perf_counter() - t0) / len(rows)


def main() -> None:
    zone = {"name": "room", "polygon": [[0, 0], [1, 0], [1, 1], [0, 1]]}
    config = parse_config({"detection_fps": 5, "cameras": [{"name": "bench", "source": str(CLIP), "zones": [zone]}]})
    motion = parse_config(
        {
            "detection_fps": 5,
            "cameras": [{"name": "bench", "source": str(CLIP), "zones": [{**zone, "motion_only": True}]}],
        }
    )
    bundle = load_bundle(BUNDLE)
    detector = CameraPipeline(config, bundle, Discard(), thing_name="bench")  # watches person (the default)
    motion_only = CameraPipeline(motion, bundle, Discard(), thing_name="bench")
    with tempfile.TemporaryDirectory() as tmp:
        with_snapshots = CameraPipeline(
            config, bundle, Discard(), thing_name="bench", snapshots=SnapshotStore(tmp), detector=detector._detector()
        )
        runs: dict[str, list[tuple[float, float]]] = {"pipeline": [], "snapshots": [], "motion": [], "naive": []}
        for i in range(max(REPEAT, REPEAT_FAST)):  # each run right after a decode-only run: both see the same load
            if i < REPEAT:
                runs["pipeline"].append((decode_only(), pipeline(detector, config.cameras[0])))
            if i < REPEAT_SLOW:
                runs["snapshots"].append((decode_only(), pipeline(with_snapshots, config.cameras[0])))
            runs["motion"].append((decode_only(), pipeline(motion_only, motion.cameras[0])))
            runs["naive"].append((decode_only(), naive_mog2()))
    dec = np.array([d for d, _ in runs["pipeline"]])

    def row(label: str, key: str, note: str = "") -> None:
        pairs = np.array(runs[key])
        fps, ratio = pairs[:, 1], pairs[:, 1] / pairs[:, 0]
        print(
            f"  {label:38s} {np.median(fps):7.0f} frames/s   {np.median(ratio):.2f}"
            f"  ({ratio.min():.2f}-{ratio.max():.2f}, {len(pairs)} pairs){note}"
        )

    print(f"clip: {CLIP.name} (768x432, 10 fps), 5 analyses/s; median ratio of back-to-back pairs (range)")
    print(f"  {'decode only (grab every frame)':38s} {np.median(dec):7.0f} frames/s   1.00")
    row("Vigil pipeline with detection (person)", "pipeline", "  target >= 0.60")
    row("  the same, saving annotated snapshots", "snapshots")
    row("  the zone on motion alone (no detector)", "motion")
    row("read + MOG2 at full size, for scale", "naive")
    rep = LAST[id(detector)]
    calls = max(rep.detector_calls, 1)
    print(
        f"object stage: {rep.detector_calls} detector calls over {rep.stats.analysed} analysed frames "
        f"({rep.detector_calls / max(rep.stats.analysed, 1):.2f} per frame, on {rep.detected_frames} frames), "
        f"{1000 * rep.detect_s / calls:.1f} ms per call (crop, LiteRT, NMS), colour decode "
        f"{1000 * rep.colour_s / max(rep.detected_frames, 1):.1f} ms per detected frame; {len(rep.starts)} alerts"
    )

    rows = np.abs(np.random.default_rng(0).normal(size=(2000, N_FEATURES))).astype(np.float32) * 0.05
    i8 = inference_ms(bundle.scorer, rows)
    fl = inference_ms(Scorer(BUNDLE / "model_float.tflite", bundle.manifest.mean, bundle.manifest.scale), rows)
    print("inference per window (one row):")
    print(f"  int8 TFLite (LiteRT)   {i8 * 1000:7.1f} us   1.00")
    print(f"  float TFLite (LiteRT)  {fl * 1000:7.1f} us   {fl / i8:.2f}")
    if (BUNDLE / "model.onnx").is_file():
        try:
            from edge_component.model.onnx_runtime import OnnxScorer  # added with the ONNX backend

            ox = inference_ms(OnnxScorer(BUNDLE / "model.onnx", bundle.manifest.mean, bundle.manifest.scale), rows)
            print(f"  ONNX Runtime           {ox * 1000:7.1f} us   {ox / i8:.2f}")
        except ImportError:
            pass

    print("resident memory over repeated replays (MiB):")
    samples = [rss_mib()]
    for _ in range(3):
        pipeline(detector, config.cameras[0])
        samples.append(rss_mib())
    print(
        "  "
        + "  ".join(f"{s:.1f}" for s in samples)
        + f"   growth after the first replay: {samples[-1] - samples[1]:+.1f} MiB"
    )


if __name__ == "__main__":
    main()
