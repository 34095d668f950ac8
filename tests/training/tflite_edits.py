"""Edits of a TFLite flatbuffer that make a model break one gate: a newer operator
version than the runtime knows, or an output zero point moved by some steps."""

from __future__ import annotations


def _edit(flatbuffer: bytes, fn) -> bytes:
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(flatbuffer, 0))
    fn(model, schema)
    b = flatbuffers.Builder(len(flatbuffer) + 1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def with_op_version(flatbuffer: bytes, op: str, version: int) -> bytes:
    """Every ``op`` opcode claims ``version``: what a model from a converter newer than
    the runtime looks like ("Didn't find op for builtin opcode ... version ...")."""

    def edit(model, schema):
        code = getattr(schema.BuiltinOperator, op)
        for oc in model.operatorCodes:
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                oc.version = version

    return _edit(flatbuffer, edit)


def with_output_zero_point_moved(flatbuffer: bytes, steps: int) -> bytes:
    """The int8 output's zero point moved by ``steps``: loads and runs, every score off by
    ``steps``/256."""

    def edit(model, schema):
        sg = model.subgraphs[0]
        q = sg.tensors[sg.outputs[0]].quantization
        q.zeroPoint = [int(q.zeroPoint[0]) + steps]

    return _edit(flatbuffer, edit)
