"""Scoring with a TFLite model in LiteRT (``ai_edge_litert``), with ``tflite_runtime``
as fallback.

Scoring (:meth:`Scorer.score`): raw feature rows -> normalised with the manifest's
mean/scale (float32) -> quantized with the input tensor's own scale and zero point
-> int8 inference -> output dequantized with the output tensor's scale and zero
point -> probability 0..1, compared in float with the threshold.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_component.analysis.features import N_FEATURES

from .errors import ModelError


def _interpreter_class():
    try:
        from ai_edge_litert.interpreter import Interpreter  # maintained successor

        return Interpreter
    except ImportError:  # pragma: no cover - exercised only where LiteRT is absent
        try:
            from tflite_runtime.interpreter import Interpreter

            return Interpreter
        except ImportError:
            raise ModelError("no TFLite runtime: install ai-edge-litert (or tflite-runtime)") from None


class Scorer:
    """Scores raw feature rows with a TFLite model (int8 or float).

    The interpreter and its tensors are allocated once. ``score(rows)`` takes
    float32 rows of shape ``(n, N_FEATURES)`` (or one row ``(N_FEATURES,)``) and returns
    float probabilities of shape ``(n,)``.
    """

    def __init__(self, model_path: str | Path, mean: np.ndarray, scale: np.ndarray):
        Interpreter = _interpreter_class()
        try:
            self._interp = Interpreter(model_path=str(model_path), num_threads=1)
            self._interp.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{model_path}: the TFLite runtime cannot load this model: {exc}") from None
        inp = self._interp.get_input_details()
        out = self._interp.get_output_details()
        if len(inp) != 1 or len(out) != 1:
            raise ModelError(f"{model_path}: expected one input and one output tensor")
        self._in, self._out = inp[0], out[0]
        if list(self._in["shape"][1:]) != [N_FEATURES]:
            raise ModelError(f"{model_path}: input shape {list(self._in['shape'])} does not take {N_FEATURES} features")
        if int(np.prod(self._out["shape"][1:])) != 1:
            raise ModelError(
                f"{model_path}: output shape {list(self._out['shape'])} is not one score per row "
                "(a softmax over classes? export a single sigmoid output)"
            )
        self._mean = np.asarray(mean, np.float32)
        self._scale = np.asarray(scale, np.float32)
        self.input_dtype = np.dtype(self._in["dtype"])
        self._in_q = self._in["quantization"]  # (scale, zero_point); scale 0 means float
        self._out_q = self._out["quantization"]
        q_scale, q_zero = self._in_q
        if self.input_dtype != np.float32 and q_scale:
            # Normalise and quantize in one multiply-add: q = round(x * a + b), clipped.
            self._a = (1.0 / (self._scale * np.float32(q_scale))).astype(np.float32)
            self._b = (np.float32(q_zero) - self._mean * self._a).astype(np.float32)
            info = np.iinfo(self.input_dtype)
            self._q_range = (info.min, info.max)

    @property
    def input_range(self) -> tuple[float, float] | None:
        """``(low, high)``: the normalised values an int8 input can hold (the range its
        calibration rows spanned); a value beyond is clipped to the nearer end (saturated)
        by :meth:`score`. None for a float model, which takes any value."""
        if self.input_dtype == np.float32 or not self._in_q[0]:
            return None
        scale, zero = self._in_q
        info = np.iinfo(self.input_dtype)
        return float((info.min - zero) * scale), float((info.max - zero) * scale)

    def _normalise_and_quantize(self, rows: np.ndarray) -> np.ndarray:
        if self.input_dtype == np.float32 or not self._in_q[0]:
            return ((rows - self._mean) / self._scale).astype(np.float32)
        return np.clip(np.rint(rows * self._a + self._b), *self._q_range).astype(self.input_dtype)

    def _dequantize(self, y: np.ndarray) -> np.ndarray:
        scale, zero = self._out_q
        if y.dtype == np.float32 or scale == 0:
            return y.astype(np.float32)
        return (y.astype(np.float32) - zero) * scale

    def score(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, np.float32).reshape(-1, N_FEATURES)
        x = self._normalise_and_quantize(rows)
        out = np.empty(len(rows), np.float32)
        for i in range(len(rows)):  # batch dimension is 1 in the converted model
            self._interp.set_tensor(self._in["index"], x[i : i + 1])
            self._interp.invoke()
            out[i] = self._dequantize(self._interp.get_tensor(self._out["index"])).reshape(-1)[0]
        return out
