"""The object detector on LiteRT (as the edge runs it) against tf2onnx conversions of the
same file on ONNX Runtime, side by side in one run (issue 15: which backend the IoT Edge
module runs the detector on).

Converts ``edge_component/models/detector``'s COCO SSD MobileNet v1 uint8 TFLite with
tf2onnx (``python -m tf2onnx.convert --tflite``, opset 17) twice: as it is (the uint8
tensors become QuantizeLinear/DequantizeLinear pairs around integer convolutions, and
TFLite_Detection_PostProcess becomes ONNX NonMaxSuppression and friends) and with
``--dequantize`` (float32 weights). No float graph is needed: tf2onnx reads the .tflite.
Then times one inference per call (the 300x300 uint8 input already made; set, invoke and
read the four outputs, or one ``session.run``), one thread each as the edge runs the
detector, on frames and centre crops of the room clip. The backends run interleaved,
round by round, so they share the machine's load; the ratio is taken per round and its
median reported with the range. Also prints how far the ONNX outputs are from LiteRT's
(detections scoring >= 0.5, the default ``min_score``).

Run: `.venv/bin/python benchmarks/bench_detector_onnx.py [--rounds 9] [--images 40]`
(or `make bench`); the two conversions take about a minute (TensorFlow's import).
No assertions: numbers differ by machine and load (this machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from edge_component.objects.detector import INPUT_SIZE, MODEL_PATH  # noqa: E402

CLIP = REPO / "examples" / "clips" / "one-by-one-person-detection.mp4"
OPSET = 17
MIN_SCORE = 0.5  # edge_component/objects/settings.py ZoneFilter.min_score's default


def convert(tflite: Path, out_dir: Path) -> dict[str, Path]:
    """``{"onnx_qdq": ..., "onnx_float": ...}``: the two tf2onnx conversions, run in parallel."""
    targets = {
        "onnx_qdq": (out_dir / "detector_qdq.onnx", []),
        "onnx_float": (out_dir / "detector_float.onnx", ["--dequantize"]),
    }
    procs = {
        name: subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tf2onnx.convert",
                "--tflite",
                str(tflite),
                "--output",
                str(path),
                "--opset",
                str(OPSET),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for name, (path, extra) in targets.items()
    }
    for name, proc in procs.items():
        log, _ = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"tf2onnx failed for {name} (exit {proc.returncode}):\n{log[-3000:]}")
    return {name: path for name, (path, _) in targets.items()}


def clip_images(n: int) -> list[np.ndarray]:
    """``n`` 1x300x300x3 uint8 RGB inputs: whole frames and their centre squares, spread over the clip."""
    cap = cv2.VideoCapture(str(CLIP))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    images = []
    for index in np.linspace(0, total - 1, max(1, n // 2)).astype(int):
        cap.set(cv2.CAP_PROP_POS_FRAMES, int(index))
        ok, frame = cap.read()
        if not ok:
            continue
        h, w = frame.shape[:2]
        side = min(h, w)
        crop = frame[(h - side) // 2 : (h + side) // 2, (w - side) // 2 : (w + side) // 2]
        for img in (frame, crop):
            small = cv2.resize(img, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_LINEAR)
            images.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)[np.newaxis])
    cap.release()
    return images


def litert_call(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)  # as ObjectDetector
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]["index"]
    outs = [d["index"] for d in interp.get_output_details()]

    def call(x: np.ndarray) -> list[np.ndarray]:
        interp.set_tensor(inp, x)
        interp.invoke()
        return [interp.get_tensor(o) for o in outs]

    return call


def onnx_call(path: Path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # as OnnxScorer
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def call(x: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(v) for v in session.run(None, {name: x})]

    return call


def kept(outputs: list[np.ndarray]) -> list[tuple[int, float, np.ndarray]]:
    """(class, score, box) of the detections scoring >= MIN_SCORE, as ObjectDetector keeps them."""
    classes, scores, count = (np.asarray(o).reshape(-1) for o in outputs[1:])
    boxes = np.asarray(outputs[0]).reshape(-1, 4)
    n = min(int(count[0]), len(scores))
    return [(int(classes[i]), float(scores[i]), boxes[i]) for i in range(n) if scores[i] >= MIN_SCORE]


def agreement(ref: list[list[np.ndarray]], other: list[list[np.ndarray]]) -> str:
    same, score_diff, box_diff = 0, 0.0, 0.0
    for a, b in zip(ref, other, strict=True):
        ka, kb = kept(a), kept(b)
        if [c for c, _, _ in ka] == [c for c, _, _ in kb]:
            same += 1
            for (_, sa, ba), (_, sb, bb) in zip(ka, kb, strict=True):
                score_diff = max(score_diff, abs(sa - sb))
                box_diff = max(box_diff, float(np.max(np.abs(ba - bb))))
    return (
        f"same classes kept (score >= {MIN_SCORE}) on {same}/{len(ref)} images; there, max |score diff| "
        f"{score_diff:.4f}, max |box diff| {box_diff:.4f} (of the image side)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--images", type=int, default=40, help="inputs per round (frames and centre crops of the clip)")
    opts = p.parse_args()

    import onnxruntime
    import tf2onnx
    from ai_edge_litert import __version__ as litert_version

    images = clip_images(opts.images)
    with tempfile.TemporaryDirectory(prefix="vigil-bench-detector-") as tmp:
        t0 = time.perf_counter()
        onnx_files = convert(MODEL_PATH, Path(tmp))
        convert_s = time.perf_counter() - t0
        sizes = {"litert": MODEL_PATH.stat().st_size, **{n: p.stat().st_size for n, p in onnx_files.items()}}
        calls = {"litert": litert_call(MODEL_PATH), **{n: onnx_call(p) for n, p in onnx_files.items()}}

        outputs = {name: [fn(x) for x in images] for name, fn in calls.items()}  # also the warm-up
        per_round: dict[str, list[float]] = {name: [] for name in calls}
        for _ in range(opts.rounds):
            for name, fn in calls.items():
                t0 = time.perf_counter()
                for x in images:
                    fn(x)
                per_round[name].append(1e3 * (time.perf_counter() - t0) / len(images))

    print(
        f"detector {MODEL_PATH.name}: LiteRT {litert_version} vs tf2onnx {tf2onnx.__version__} (opset {OPSET}) "
        f"on ONNX Runtime {onnxruntime.__version__}; one thread each; {len(images)} inputs x {opts.rounds} "
        f"rounds, interleaved; conversions took {convert_s:.0f} s"
    )
    print(f"{'backend':<12} {'bytes':>9} {'ms/call':>8} {'p90':>7} {'x litert (median, range)':>28}")
    base = np.asarray(per_round["litert"])
    for name, times in per_round.items():
        ratios = np.asarray(times) / base
        print(
            f"{name:<12} {sizes[name]:>9} {np.median(times):>8.2f} {np.percentile(times, 90):>7.2f} "
            f"{np.median(ratios):>10.2f} ({ratios.min():.2f}-{ratios.max():.2f})"
        )
    for name in onnx_files:
        print(f"{name} vs litert: {agreement(outputs['litert'], outputs[name])}")


if __name__ == "__main__":
    main()
