"""4-bit weights in TFLite: INT4 tensors where both LiteRT and TFLM run them (CONV_2D, DEPTHWISE_CONV_2D),
int8 storage elsewhere (FULLY_CONNECTED: TFLM refuses INT4 filters); bit-exact with the reference."""
import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.frontend.tflite import import_tflite
from edgec.ir import Graph, Op, QuantParams, Tensor, structurally_equal
from edgec.ir.ops import default_attrs
from edgec.tflite_schema import schema
from opcheck import check_bit_exact


def graph(op_type, cout=5):
    rng = np.random.default_rng(0)
    g = Graph()
    if op_type == "FULLY_CONNECTED":
        x, wshape, axis, y = (1, 17), (cout, 17), 0, (1, cout)
        attrs = default_attrs(op_type)
    else:
        x, y = (1, 7, 6, 4), (1, 7, 6, cout if op_type == "CONV_2D" else 4)
        wshape, axis = ((cout, 3, 3, 4), 0) if op_type == "CONV_2D" else ((1, 3, 3, 4), 3)
        attrs = default_attrs(op_type, padding="SAME", stride_h=1, stride_w=1,
                              **({"depth_multiplier": 1} if op_type != "CONV_2D" else {}))
    n = wshape[axis]
    w = rng.integers(-7, 8, wshape).astype(np.int8)
    g.add_tensor(Tensor("x", x, "int8", quant=QuantParams(0.05, 3)))
    g.add_tensor(Tensor("w", wshape, "int8", w, QuantParams(np.linspace(0.01, 0.03, n), np.zeros(n), axis, bits=4)))
    g.add_tensor(Tensor("b", (n,), "int32", rng.integers(-99, 99, n).astype(np.int32),
                        QuantParams(0.05 * np.linspace(0.01, 0.03, n), np.zeros(n), 0, bits=32)))
    g.add_tensor(Tensor("y", y, "int8", quant=QuantParams(0.1, -2)))
    g.ops = [Op(op_type, ["x", "w", "b"], ["y"], attrs)]
    g.inputs, g.outputs = ["x"], ["y"]
    return g


def weight_type(model: bytes) -> int:
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    return next(t.type for t in m.subgraphs[0].tensors if (t.name.decode() if isinstance(t.name, bytes) else t.name) == "w")


@pytest.mark.parametrize("op_type", ["CONV_2D", "DEPTHWISE_CONV_2D"])
def test_int4_weights_are_packed_and_run_bit_exact(op_type):
    g = graph(op_type)
    model = write_tflite(g)
    assert weight_type(model) == schema.TensorType.INT4
    assert len(model) < len(write_tflite(_as_int8(g)))
    back = import_tflite(model)
    assert back.tensors["w"].quant.bits == 4 and np.array_equal(back.tensors["w"].data, g.tensors["w"].data)
    assert structurally_equal(g, back) is None
    check_bit_exact(g, n=20)


def test_fully_connected_keeps_int8_storage_for_tflm():
    g = graph("FULLY_CONNECTED")
    assert weight_type(write_tflite(g)) == schema.TensorType.INT8
    check_bit_exact(g, n=20)


def _as_int8(g):
    h = g.copy()
    h.tensors["w"].quant.bits = 8
    return h


def test_int16_activations_keep_int8_storage():
    g = graph("CONV_2D")
    g.tensors["x"].dtype = g.tensors["y"].dtype = "int16"
    g.tensors["x"].quant = QuantParams(0.001, 0, bits=16)
    g.tensors["y"].quant = QuantParams(0.002, 0, bits=16)
    b = g.tensors["b"]
    b.dtype, b.data = "int64", b.data.astype(np.int64)
    assert weight_type(write_tflite(g)) == schema.TensorType.INT8
    check_bit_exact(g, n=5)
