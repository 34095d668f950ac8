"""Training test fixtures: the example clip featurised once, its feature CSV, a small
CSV of both classes, and edits of a TFLite flatbuffer that break one gate."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from edge_component.analysis.features import FEATURE_NAMES
from training.dataset import featurize_labels, write_dataset

LABELS = Path(__file__).resolve().parents[2] / "examples" / "labels" / "one-by-one-person-detection.json"


@pytest.fixture(scope="session")
def dataset():
    """The example clip's windows, featurised with the edge's code and labelled."""
    return featurize_labels([LABELS])


@pytest.fixture()
def csv_path(dataset, tmp_path):
    """``dataset`` written as a feature CSV (a fresh copy per test, free to edit)."""
    return write_dataset(dataset, tmp_path / "features.csv")


@pytest.fixture(scope="session")
def rows() -> list[list[str]]:
    """Twenty CSV rows of both classes (values need not come from a clip here)."""
    return [
        ["a.mp4", f"{i * 0.2:.1f}", "", *(f"{(i % 7) * 0.01:g}" for _ in FEATURE_NAMES), str(i % 2)] for i in range(20)
    ]


def _edit(flatbuffer: bytes, fn) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    fn(model, schema)
    b = flatbuffers.Builder(len(flatbuffer) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _with_op_version(flatbuffer: bytes, op: str, version: int) -> bytes:
    """Every ``op`` opcode claims ``version``: what a model from a converter newer than
    the runtime looks like ("Didn't find op for builtin opcode ... version ...")."""

    def edit(model, schema):
        code = getattr(schema.BuiltinOperator, op)
        for oc in model.operatorCodes:
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                oc.version = version

    return _edit(flatbuffer, edit)


def _with_output_zero_point_moved(flatbuffer: bytes, steps: int) -> bytes:
    """The int8 output's zero point moved by ``steps``: loads and runs, every score off by
    ``steps``/256."""

    def edit(model, schema):
        sg = model.subgraphs[0]
        q = sg.tensors[sg.outputs[0]].quantization
        q.zeroPoint = [int(q.zeroPoint[0]) + steps]

    return _edit(flatbuffer, edit)


@pytest.fixture(scope="session")
def tflite_edits() -> SimpleNamespace:
    """Edits of a TFLite flatbuffer that make a model break one gate: ``with_op_version(fb,
    op, version)`` (a newer operator version than the runtime knows) and
    ``with_output_zero_point_moved(fb, steps)``."""
    return SimpleNamespace(with_op_version=_with_op_version, with_output_zero_point_moved=_with_output_zero_point_moved)
