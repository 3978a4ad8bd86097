"""The quantize pass: int8 / int16x8 / float16 structure, and int8 output equal in LiteRT, TFLM and
the reference interpreter."""
import numpy as np
import pytest

from edgec.calibrate import observe
from edgec.errors import EdgecError
from edgec.ir import interpret
from edgec.passes import Pipeline, Step
from graphs import small_cnn
from opcheck import check_bit_exact


def calib(n=20, seed=0):
    return [np.random.default_rng(seed).standard_normal((n, 8, 8, 1)).astype(np.float32)]


def quantized(dtype, **opts):
    g = small_cnn()
    xs = calib()
    out, rep = Pipeline([Step("quantize", {"dtype": dtype, **opts})]).run(
        g.copy(), observe=lambda gg: observe(gg, xs), debug=True)
    return g, out, rep[0]


def test_int8_structure():
    g, q, rep = quantized("int8")
    for op in q.ops:
        x = q.tensors[op.inputs[0]]
        assert x.dtype == "int8" and x.quant is not None
        if op.type == "CONV_2D":
            w, b = q.tensors[op.inputs[1]], q.tensors[op.inputs[2]]
            assert w.dtype == "int8" and w.quant.axis == 0 and w.quant.scale.size == w.shape[0]
            assert np.abs(w.data).max() <= 127 and np.all(w.quant.zero_point == 0)
            assert b.dtype == "int32"
            np.testing.assert_allclose(b.quant.scale, x.quant.scale[0] * w.quant.scale, rtol=1e-6)
    sm = q.tensors[q.outputs[0]].quant
    assert sm.scale[0] == np.float32(1 / 256) and sm.zero_point[0] == -128
    assert rep["fallback_ops"] == []


def test_int8_is_close_to_float_and_bit_exact_across_runtimes():
    g, q, _ = quantized("int8")
    x = calib(5, seed=7)[0]
    xq = q.tensors[q.inputs[0]].quant.quantize(x, "int8")
    yf = interpret.run_batch(g, [x])[0]
    yq = q.tensors[q.outputs[0]].quant.dequantize(interpret.run_batch(q, [xq])[0])
    assert np.abs(yf - yq).max() < 0.05
    check_bit_exact(q, inputs=[xq])


def test_int16x8_bit_exact():
    g, q, _ = quantized("int16x8")
    assert q.tensors[q.inputs[0]].dtype == "int16"
    assert all(q.tensors[op.inputs[2]].dtype == "int64" for op in q.ops if op.type == "CONV_2D")
    check_bit_exact(q, n=3)


def test_float_io_wraps_quantize_dequantize():
    g, q, _ = quantized("int8", io="float")
    assert q.ops[0].type == "QUANTIZE" and q.ops[-1].type == "DEQUANTIZE"
    assert q.tensors[q.inputs[0]].dtype == "float32" and q.tensors[q.outputs[0]].dtype == "float32"
    x = calib(3, seed=3)[0]
    np.testing.assert_allclose(interpret.run_batch(q, [x])[0], interpret.run_batch(g, [x])[0], atol=0.05)


def test_float16_stores_half_weights():
    g, q, rep = quantized("float16")
    halves = [t for t in q.tensors.values() if t.dtype == "float16"]
    assert halves and rep["float16_tensors"] == len(halves)
    assert sum(op.type == "DEQUANTIZE" for op in q.ops) == len(halves)
    x = calib(3)[0]
    np.testing.assert_allclose(interpret.run_batch(q, [x])[0], interpret.run_batch(g, [x])[0], atol=1e-2)
    check_bit_exact(q, tflm=False, inputs=[x])


@pytest.mark.parametrize("method", ["percentile", "mse"])
def test_other_calibration_methods_shrink_ranges(method):
    _, a, _ = quantized("int8")
    _, b, rep = quantized("int8", calibration=method)
    assert rep["calibration"] == method
    name = a.ops[0].outputs[0]
    assert b.tensors[name].quant.scale[0] <= a.tensors[name].quant.scale[0]


def test_int8_without_calibration_is_a_user_error():
    with pytest.raises(EdgecError, match="calibration"):
        Pipeline([Step("quantize", {"dtype": "int8"})]).run(small_cnn())


def test_per_layer_override_turns_off_per_channel():
    g = small_cnn()
    xs = calib()
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"}, {"conv2": {"per_channel": False}})]).run(
        g, observe=lambda gg: observe(gg, xs))
    convs = [op for op in q.ops if op.type == "CONV_2D"]
    assert q.tensors[convs[0].inputs[1]].quant.per_channel
    assert not q.tensors[convs[1].inputs[1]].quant.per_channel


def test_near_dead_activations_still_give_a_loadable_model():
    """Tiny calibrated ranges must not make a fused RELU6's integer bound overflow int32."""
    from graphs import Builder
    from edgec.run.litert import run_litert
    from edgec.backends.tflite import write_tflite
    b = Builder()
    x = b.input((1, 4, 4, 2))
    y = b.conv(x, 3, act="RELU6", name="c")
    g = b.output(y)
    g.tensors["c_w"].data *= 1e-12
    g.tensors["c_b"].data *= 0
    xs = [np.random.default_rng(0).standard_normal((10, 4, 4, 2)).astype(np.float32)]
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"})]).run(g, observe=lambda gg: observe(gg, xs))
    assert q.tensors[q.outputs[0]].quant.scale[0] >= 1e-8
    run_litert(write_tflite(q), [q.tensors[q.inputs[0]].quant.quantize(xs[0][:2], "int8")])


def test_transpose_conv_bias_takes_the_activation_input_scale():
    """TRANSPOSE_CONV's activation is input 2 (input 0 is its output shape)."""
    from edgec.ir import Graph, Op, Tensor
    from edgec.ir.ops import default_attrs
    rng = np.random.default_rng(0)
    g = Graph()
    g.add_tensor(Tensor("x", (1, 4, 4, 3)))
    shape = g.const("oshape", np.array([1, 8, 8, 5], np.int32))
    w = g.const("w", rng.standard_normal((5, 3, 3, 3)).astype(np.float32))
    b = g.const("b", rng.standard_normal(5).astype(np.float32))
    g.add_tensor(Tensor("y", (1, 8, 8, 5)))
    g.ops = [Op("TRANSPOSE_CONV", [shape, w, "x", b], ["y"],
                default_attrs("TRANSPOSE_CONV", padding="SAME", stride_w=2, stride_h=2))]
    g.inputs, g.outputs = ["x"], ["y"]
    xs = [rng.standard_normal((20, 4, 4, 3)).astype(np.float32)]
    q, _ = Pipeline([Step("quantize", {"dtype": "int8"})]).run(g, observe=lambda gg: observe(gg, xs))
    bias, wq, x = (q.tensors[q.ops[0].inputs[k]] for k in (3, 1, 2))
    assert bias.dtype == "int32"
    np.testing.assert_allclose(bias.quant.scale, x.quant.scale[0] * wq.quant.scale, rtol=1e-6)
    check_bit_exact(q)
