"""The exported models side by side: file size, gzip size, and per-inference latency
of Keras, float TFLite, int8 TFLite (both LiteRT) and ONNX Runtime, on the same held-out
windows of the example clip, one row at a time as the edge scores a window.

Trains the default model on the example clip first (about 10 s), exports it as the
training job does, and loads each file with the edge's own scorer (normalisation,
int8 quantize/dequantize included). Also converts the int8 model a second time with
per-channel weight scales, to show what they cost in bytes.

Run: `.venv/bin/python benchmarks/bench_models.py [--rows 500] [--rounds 7]` (or
`make bench`). Prints ratios to int8 TFLite; no assertions (numbers differ by machine
and load; this machine's 2 cores are shared).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from edge_component.model.bundle import make_scorer  # noqa: E402
from training import export  # noqa: E402
from training.channels import load_channel, split_blocks  # noqa: E402
from training.fit import fit  # noqa: E402
from training.metrics import roc_auc  # noqa: E402
from training.report import latency_table, measure_latency  # noqa: E402
from training.train import parse_args  # noqa: E402

LABELS = REPO / "examples" / "labels" / "one-by-one-person-detection.json"


def interpreter_only_us(path: Path, calls: int = 20000) -> float:
    """Microseconds per set_tensor + invoke + get_tensor in LiteRT, with nothing around
    it: what the edge scorer's own per-row work (normalise, quantize, dequantize) adds to."""
    import time

    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path), num_threads=1)
    it.allocate_tensors()
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    x = np.zeros(inp["shape"], inp["dtype"])
    for _ in range(100):
        it.set_tensor(inp["index"], x)
        it.invoke()
    t0 = time.perf_counter()
    for _ in range(calls):
        it.set_tensor(inp["index"], x)
        it.invoke()
        it.get_tensor(out["index"])
    return 1e6 * (time.perf_counter() - t0) / calls


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rows", type=int, default=500, help="held-out windows timed per model and round")
    p.add_argument("--rounds", type=int, default=7)
    opts = p.parse_args()

    args = parse_args(["--train", str(LABELS)])
    train_ds, val_ds = split_blocks(load_channel(LABELS), args.validation_every)
    scaler, model = fit(train_ds, val_ds, args)
    calibration = export.representative_rows(scaler.transform(train_ds.X), args.representative_rows)
    with export.saved_model(model) as sm:
        files = {
            export.INT8_FILE: export.to_tflite_int8(sm, calibration),
            export.FLOAT_FILE: export.to_tflite_float(sm),
            "model_int8_per_channel.tflite": export.to_tflite_int8(sm, calibration, per_channel=True),
        }
    files[export.ONNX_FILE] = export.to_onnx(model)

    rows = val_ds.X[np.linspace(0, len(val_ds) - 1, opts.rows).astype(int)]
    with tempfile.TemporaryDirectory(prefix="vigil-bench-models-") as tmp:
        scorers = {}
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
            scorers[name] = make_scorer(Path(tmp) / name, scaler.mean, scaler.scale)
        calls = {
            "keras": lambda r: model(scaler.transform(r.reshape(1, -1)), training=False),
            "tflite_int8": scorers[export.INT8_FILE].score,
            "tflite_float": scorers[export.FLOAT_FILE].score,
            "onnxruntime": scorers[export.ONNX_FILE].score,
        }
        latency = measure_latency(calls, rows, rounds=opts.rounds)
        keras_val = model.predict(scaler.transform(val_ds.X), verbose=0).reshape(-1)
        aucs = {name: roc_auc(val_ds.y, s.score(val_ds.X)) for name, s in scorers.items()}
        bare = {name: interpreter_only_us(Path(tmp) / name) for name in (export.INT8_FILE, export.FLOAT_FILE)}

    f, i8, pc = (len(files[n]) for n in (export.FLOAT_FILE, export.INT8_FILE, "model_int8_per_channel.tflite"))
    print(
        f"model: {model.count_params()} parameters, trained on {LABELS.name}; "
        f"{len(rows)} held-out windows x {opts.rounds} rounds, one row per call, median"
    )
    sizes = {"tflite_int8": i8, "tflite_float": f, "onnxruntime": len(files[export.ONNX_FILE])}
    print(latency_table(latency, sizes, "tflite_int8"))
    print(
        "LiteRT interpreter alone (set, invoke, get; no normalisation or quantization): "
        + ", ".join(f"{n} {us:.1f} us" for n, us in bare.items())
    )
    print("sizes (bytes; gzip -9 in brackets):")
    for name, data in files.items():
        print(f"  {name:<30} {len(data):>7} ({export.gzip_size(data):>6})  {len(data) / f:5.2f} of float")
    print(f"  int8 per-tensor / per-channel: {i8 / pc:.2f} (per-channel scales and int64 zero points: {pc - i8} bytes)")
    print(
        f"validation AUC: keras {roc_auc(val_ds.y, keras_val):.4f}, "
        + ", ".join(f"{n} {a:.4f}" for n, a in aucs.items())
    )


if __name__ == "__main__":
    main()
