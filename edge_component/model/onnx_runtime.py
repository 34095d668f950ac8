"""Scoring with a float32 ONNX model in ONNX Runtime (``model.onnx``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_component.analysis.features import N_FEATURES

from .errors import ModelError


class OnnxScorer:
    """Scores raw feature rows with a float32 ONNX model in ONNX Runtime.

    Same contract as :class:`Scorer`: ``score(rows)`` takes float32 rows ``(n,
    N_FEATURES)`` (or one row), normalises them with ``mean``/``scale`` and returns
    probabilities ``(n,)``. The model must have one float32 input ``(batch,
    N_FEATURES)`` and one output of one value per row. The session (one thread, like
    the TFLite interpreter) is created once. Raises :class:`ModelError` when
    ``onnxruntime`` is missing or cannot load the model.
    """

    def __init__(self, model_path: str | Path, mean: np.ndarray, scale: np.ndarray):
        try:
            import onnxruntime as ort
        except ImportError:
            raise ModelError(f"{model_path}: ONNX Runtime is not installed (pip install onnxruntime)") from None
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only: the session logs each fused node otherwise
        try:
            self._session = ort.InferenceSession(str(model_path), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"{model_path}: ONNX Runtime cannot load this model: {exc}") from None
        inp, out = self._session.get_inputs(), self._session.get_outputs()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{model_path}: expected one input and one output, got {len(inp)} and {len(out)}")
        if inp[0].type != "tensor(float)":
            raise ModelError(f"{model_path}: input {inp[0].name!r} is {inp[0].type}, expected tensor(float)")
        if len(inp[0].shape) != 2 or inp[0].shape[1] != N_FEATURES:
            raise ModelError(f"{model_path}: input shape {inp[0].shape} does not take {N_FEATURES} features")
        self._input, self._output = inp[0].name, out[0].name
        self._mean = np.asarray(mean, np.float32)
        self._scale = np.asarray(scale, np.float32)
        self.input_dtype = np.dtype(np.float32)

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32).reshape(-1, N_FEATURES)
        x = ((rows - self._mean) / self._scale).astype(np.float32)
        (y,) = self._session.run([self._output], {self._input: x})
        y = np.asarray(y, np.float32).reshape(len(rows), -1)
        if y.shape[1] != 1:
            raise ModelError(f"ONNX model returned {y.shape[1]} values per row, expected 1")
        return y[:, 0]
