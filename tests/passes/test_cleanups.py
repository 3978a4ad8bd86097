"""Clean-up passes: each has a before/expected test and a should-NOT-transform test."""
import numpy as np
import pytest

from edgec.ir import interpret, structurally_equal, verify
from edgec.passes import Pipeline, Step
from graphs import Builder


def run_pass(g, name, **options):
    out, reports = Pipeline([Step(name, options)]).run(g.copy(), debug=True)
    return out, reports[0]


def same_outputs(a, b, shape):
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for ya, yb in zip(interpret.run(a, [x]), interpret.run(b, [x])):
        np.testing.assert_allclose(ya, yb, rtol=1e-4, atol=1e-5)


def conv_mul_add(extra_reader=False):
    b = Builder(3)
    x = b.input((1, 6, 6, 2))
    y = b.conv(x, 4, name="conv")
    scale = b.const("bn_scale", [0.5, 2.0, -1.0, 3.0])
    shift = b.const("bn_shift", [0.1, 0.2, 0.3, 0.4])
    m = b.op("MUL", [y, scale], (1, 6, 6, 4), "bn_mul")
    a = b.op("ADD", [m, shift], (1, 6, 6, 4), "bn_add")
    return b.output(a, y) if extra_reader else b.output(a)


def test_fold_batchnorm_folds_mul_add_into_conv():
    g = conv_mul_add()
    out, rep = run_pass(g, "fold_batchnorm")
    assert rep["folded"] == 2
    # expected: one conv with W*scale and b*scale+shift
    b = Builder(3)
    x = b.input((1, 6, 6, 2))
    w = g.tensors["conv_w"].data * np.array([0.5, 2.0, -1.0, 3.0], np.float32).reshape(4, 1, 1, 1)
    bias = g.tensors["conv_b"].data * np.array([0.5, 2.0, -1.0, 3.0], np.float32) + np.array([0.1, 0.2, 0.3, 0.4], np.float32)
    wt, bt = b.const("w", w), b.const("b", bias)
    from edgec.ir.ops import default_attrs
    from edgec.ir import Op, Tensor
    b.g.add_tensor(Tensor("y", (1, 6, 6, 4)))
    b.g.ops.append(Op("CONV_2D", [x, wt, bt], ["y"], default_attrs("CONV_2D", padding="SAME", stride_h=1, stride_w=1)))
    expected = b.output("y")
    assert structurally_equal(out, expected, check_data=False) is None
    np.testing.assert_allclose(out.tensors[out.ops[0].inputs[1]].data, w, rtol=1e-6)
    same_outputs(g, out, (1, 6, 6, 2))


def test_fold_batchnorm_leaves_conv_whose_output_is_also_read_elsewhere():
    g = conv_mul_add(extra_reader=True)
    out, rep = run_pass(g, "fold_batchnorm")
    assert rep["folded"] == 0
    assert structurally_equal(out, g) is None


def test_fold_batchnorm_leaves_mul_by_activation():
    b = Builder()
    x = b.input((1, 4, 4, 3))
    y = b.conv(x, 3, name="c")
    z = b.op("MUL", [y, x], (1, 4, 4, 3), "m")
    g = b.output(z)
    out, rep = run_pass(g, "fold_batchnorm")
    assert rep["folded"] == 0 and structurally_equal(out, g) is None


def test_fuse_activations_fuses_relu():
    b = Builder()
    x = b.input((1, 5, 5, 2))
    y = b.conv(x, 3, name="c")
    g = b.output(b.op("RELU", [y], (1, 5, 5, 3), "r"))
    out, rep = run_pass(g, "fuse_activations")
    assert rep["fused"] == 1 and [o.type for o in out.ops] == ["CONV_2D"]
    assert out.ops[0].attrs["fused_activation_function"] == "RELU"
    assert out.outputs == g.outputs
    same_outputs(g, out, (1, 5, 5, 2))


def test_fuse_activations_keeps_relu_when_preactivation_is_an_output():
    b = Builder()
    x = b.input((1, 5, 5, 2))
    y = b.conv(x, 3, name="c")
    g = b.output(b.op("RELU", [y], (1, 5, 5, 3), "r"), y)
    out, rep = run_pass(g, "fuse_activations")
    assert rep["fused"] == 0 and structurally_equal(out, g) is None


def test_remove_identity_drops_noop_reshape_and_collapses_chains():
    b = Builder()
    x = b.input((1, 2, 3, 4))
    c = b.conv(x, 4, name="c")
    r1 = b.reshape(c, (1, 2, 3, 4))           # no-op
    r2 = b.reshape(r1, (1, 6, 4))
    r3 = b.reshape(r2, (1, 24))               # chain
    g = b.output(b.fc(r3, 5, name="f"))
    out, rep = run_pass(g, "remove_identity")
    assert [o.type for o in out.ops] == ["CONV_2D", "RESHAPE", "FULLY_CONNECTED"]
    assert out.tensors[out.ops[1].outputs[0]].shape == (1, 24)
    same_outputs(g, out, (1, 2, 3, 4))


def test_remove_identity_keeps_shape_changing_reshape():
    b = Builder()
    x = b.input((1, 2, 3, 4))
    g = b.output(b.fc(b.reshape(b.conv(x, 4, name="c"), (1, 24)), 5, name="f"))
    out, rep = run_pass(g, "remove_identity")
    assert rep["removed"] == 0 and structurally_equal(out, g) is None


def test_fold_constants_folds_float16_dequantize():
    from edgec.ir import Op, Tensor
    from edgec.ir.ops import default_attrs
    b = Builder()
    x = b.input((1, 4))
    half = b.g.const("w16", np.arange(12, dtype=np.float16).reshape(3, 4) / 8)
    b.g.add_tensor(Tensor("w", (3, 4)))
    b.g.ops.append(Op("DEQUANTIZE", [half], ["w"], default_attrs("DEQUANTIZE")))
    bias = b.const("bias", [0, 0, 0])
    y = b.op("FULLY_CONNECTED", [x, "w", bias], (1, 3), "fc")
    g = b.output(y)
    out, rep = run_pass(g, "fold_constants")
    assert rep["folded"] == 1 and [o.type for o in out.ops] == ["FULLY_CONNECTED"]
    w = out.tensors[out.ops[0].inputs[1]]
    assert w.dtype == "float32" and np.array_equal(w.data, (np.arange(12).reshape(3, 4) / 8).astype(np.float32))


def test_fold_constants_leaves_ops_on_activations():
    b = Builder()
    x = b.input((1, 4))
    g = b.output(b.fc(x, 3, name="f"))
    out, rep = run_pass(g, "fold_constants")
    assert rep["folded"] == 0 and structurally_equal(out, g) is None


def test_unknown_pass_and_option_are_user_errors():
    from edgec.errors import EdgecError
    with pytest.raises(EdgecError, match="unknown pass"):
        Pipeline([Step("no_such_pass")])
    with pytest.raises(EdgecError, match="unknown option"):
        Pipeline([Step("quantize", {"bitz": 3})])


def test_verify_catches_a_broken_graph():
    from edgec.ir import VerifyError
    b = Builder()
    x = b.input((1, 4))
    g = b.output(b.fc(x, 3, name="f"))
    g.tensors[g.outputs[0]].shape = (1, 4)
    with pytest.raises(VerifyError, match="inference"):
        verify(g)


def test_interpreter_names_the_op_for_an_unsupported_dtype_combination():
    """The reference refuses what TFLite Micro has no kernel for, as a user error naming the op."""
    from edgec.errors import EdgecError
    from edgec.ir import Graph, Op, QuantParams, Tensor
    from edgec.ir.ops import default_attrs
    g = Graph()
    g.add_tensor(Tensor("x", (1, 4, 4, 2), "int16", quant=QuantParams(0.01, 0, bits=16)))
    g.const("w", np.ones((1, 3, 3, 2), np.int8), QuantParams([0.1, 0.1], [0, 0], 3))
    g.const("b", np.zeros(2, np.int32), QuantParams([0.001, 0.001], [0, 0], 0, bits=32))
    g.add_tensor(Tensor("y", (1, 4, 4, 2), "int16", quant=QuantParams(0.02, 0, bits=16)))
    g.ops = [Op("DEPTHWISE_CONV_2D", ["x", "w", "b"], ["y"],
                default_attrs("DEPTHWISE_CONV_2D", padding="SAME", stride_h=1, stride_w=1, depth_multiplier=1))]
    g.inputs, g.outputs = ["x"], ["y"]
    with pytest.raises(EdgecError, match="DEPTHWISE_CONV_2D"):
        interpret.run(g, [np.zeros((1, 4, 4, 2), np.int16)])
