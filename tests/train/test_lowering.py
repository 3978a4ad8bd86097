"""Every float op's TF lowering (OpDef.tf) equals its numpy float reference, on a batch."""
import numpy as np
import pytest

from edgec.ir import Graph, Op, Tensor, verify
from edgec.ir import ops as opreg
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from edgec.train import build_model

NOT_FLOAT = {"QUANTIZE"}   # float -> integer: nothing to train


def _graph(op_type, in_shapes, consts, attrs, rng):
    """One op: activation inputs from in_shapes (None -> const from `consts` at that position)."""
    g = Graph(name=op_type.lower())
    names = []
    for k, shape in enumerate(in_shapes):
        if k in consts:
            c = consts[k]
            if c is None:
                names.append(None)
                continue
            names.append(g.const(f"c{k}", np.asarray(c)))
        else:
            n = f"x{k}"
            g.add_tensor(Tensor(n, shape))
            g.inputs.append(n)
            names.append(n)
    op = Op(op_type, names, ["y"], default_attrs(op_type, **attrs))
    d = opreg.get(op_type)
    oshape = d.shape(op, [g.t(n) for n in names])[0]
    g.add_tensor(Tensor("y", oshape))
    g.ops.append(op)
    g.outputs.append("y")
    return g


def _r(rng, *shape, s=1.0):
    return (rng.standard_normal(shape) * s).astype(np.float32)


def cases():
    rng = np.random.default_rng(0)
    i32 = lambda v: np.array(v, np.int32)  # noqa: E731
    c = []
    for act in ("NONE", "RELU6"):
        c.append(("CONV_2D", [(1, 7, 6, 4), 0, 0], {1: _r(rng, 5, 3, 3, 4), 2: _r(rng, 5)},
                  dict(padding="SAME", stride_h=2, stride_w=1, fused_activation_function=act)))
    c.append(("CONV_2D", [(1, 9, 9, 4), 0, 0], {1: _r(rng, 6, 3, 2, 2), 2: None},
              dict(padding="VALID", stride_h=1, stride_w=2, dilation_h_factor=2, fused_activation_function="RELU")))
    c.append(("DEPTHWISE_CONV_2D", [(1, 8, 7, 3), 0, 0], {1: _r(rng, 1, 3, 3, 6), 2: _r(rng, 6)},
              dict(padding="SAME", stride_h=2, stride_w=2, depth_multiplier=2, fused_activation_function="RELU")))
    c.append(("DEPTHWISE_CONV_2D", [(1, 9, 9, 3), 0, 0], {1: _r(rng, 1, 3, 3, 3), 2: _r(rng, 3)},
              dict(padding="SAME", stride_h=2, stride_w=2, dilation_h_factor=2, dilation_w_factor=2)))
    c.append(("FULLY_CONNECTED", [(1, 2, 3, 4), 0, 0], {1: _r(rng, 5, 24), 2: _r(rng, 5)},
              dict(fused_activation_function="RELU")))
    c.append(("FULLY_CONNECTED", [(1, 3, 4), 0, 0], {1: _r(rng, 5, 4), 2: None}, dict(keep_num_dims=True)))
    c.append(("TRANSPOSE_CONV", [0, 0, (1, 4, 3, 3), 0], {0: i32([1, 8, 6, 5]), 1: _r(rng, 5, 3, 3, 3), 3: _r(rng, 5)},
              dict(padding="SAME", stride_h=2, stride_w=2)))
    c.append(("TRANSPOSE_CONV", [0, 0, (1, 3, 3, 2), 0], {0: i32([1, 7, 7, 4]), 1: _r(rng, 4, 3, 3, 2), 3: None},
              dict(padding="VALID", stride_h=2, stride_w=2)))
    for t in ("ADD", "SUB", "MUL"):
        c.append((t, [(1, 4, 5, 3), (1, 4, 5, 3)], {}, dict(fused_activation_function="RELU")))
        c.append((t, [(1, 4, 5, 3), 0], {1: _r(rng, 1, 1, 3)}, {}))
    for t in ("AVERAGE_POOL_2D", "MAX_POOL_2D"):
        c.append((t, [(1, 7, 6, 3)], {}, dict(padding="SAME", stride_h=2, stride_w=2, filter_height=3,
                                               filter_width=2, fused_activation_function="RELU6")))
        c.append((t, [(1, 7, 6, 3)], {}, dict(padding="VALID", stride_h=1, stride_w=2, filter_height=2, filter_width=2)))
    c.append(("MEAN", [(1, 5, 4, 3), 0], {1: i32([1, 2])}, dict(keep_dims=True)))
    c.append(("MEAN", [(1, 5, 4, 3), 0], {1: i32([-2])}, dict(keep_dims=False)))
    for t in ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH"):
        c.append((t, [(1, 4, 6)], {}, {}))
    c.append(("SOFTMAX", [(1, 10)], {}, dict(beta=0.7)))
    c.append(("BATCH_MATMUL", [(1, 3, 4), (1, 4, 5)], {}, {}))
    c.append(("BATCH_MATMUL", [(1, 2, 3, 8), 0], {1: _r(rng, 2, 5, 8)}, dict(adj_y=True)))
    c.append(("GATHER", [0, 0], {0: _r(rng, 10, 4), 1: i32([[3, 0, 9]])}, {}))   # training takes float inputs
    c.append(("PRELU", [(1, 3, 4, 5), 0], {1: _r(rng, 1, 1, 5)}, {}))
    c.append(("LEAKY_RELU", [(1, 3, 4)], {}, dict(alpha=0.2)))
    c.append(("RESHAPE", [(1, 4, 6), 0], {1: i32([1, -1])}, dict(new_shape=[1, -1])))
    c.append(("TRANSPOSE", [(1, 3, 4, 5), 0], {1: i32([0, 2, 3, 1])}, {}))
    c.append(("RESHAPE", [(1, 4, 6), 0], {1: i32([1, 2, 12])}, dict(new_shape=[1, 2, 12])))
    c.append(("SQUEEZE", [(1, 1, 1, 6)], {}, dict(squeeze_dims=[1, 2])))
    c.append(("CONCATENATION", [(1, 4, 2), (1, 4, 3)], {}, dict(axis=-1, fused_activation_function="RELU")))
    c.append(("CONCATENATION", [(1, 4, 2), 0], {1: _r(rng, 1, 1, 2)}, dict(axis=1)))
    c.append(("PAD", [(1, 3, 4, 2), 0], {1: i32([[0, 0], [1, 2], [0, 1], [0, 0]])}, {}))
    c.append(("STRIDED_SLICE", [(1, 6, 7, 4), 0, 0, 0],
              {1: i32([0, 1, 6, 0]), 2: i32([1, 6, 0, 3]), 3: i32([1, 2, -1, 1])}, dict(end_mask=0)))
    c.append(("STRIDED_SLICE", [(1, 6, 4), 0, 0, 0],
              {1: i32([0, 2, 0]), 2: i32([1, 3, 4]), 3: i32([1, 1, 1])}, dict(shrink_axis_mask=2)))
    c.append(("DEPTH_TO_SPACE", [(1, 3, 2, 8)], {}, dict(block_size=2)))
    c.append(("SPACE_TO_DEPTH", [(1, 4, 6, 3)], {}, dict(block_size=2)))
    for align, half in ((False, False), (True, False), (False, True)):
        c.append(("RESIZE_BILINEAR", [(1, 3, 5, 2), 0], {1: i32([7, 4])},
                  dict(align_corners=align, half_pixel_centers=half)))
        c.append(("RESIZE_NEAREST_NEIGHBOR", [(1, 3, 5, 2), 0], {1: i32([7, 4])},
                  dict(align_corners=align, half_pixel_centers=half)))
    c.append(("DEQUANTIZE", [0], {0: _r(rng, 1, 3, 4).astype(np.float16)}, {}))
    c.append(("DENSIFY", [0], {0: _r(rng, 3, 4)}, {}))
    return c


CASES = cases()


def test_every_float_op_has_a_lowering_and_a_case():
    lowered = {k for k, d in opreg.REGISTRY.items() if d.tf is not None}
    assert lowered == set(opreg.REGISTRY) - NOT_FLOAT
    assert {c[0] for c in CASES} == lowered


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}-{k}" for k, c in enumerate(CASES)])
def test_lowering_matches_reference(case):
    op_type, shapes, consts, attrs = case
    rng = np.random.default_rng(1)
    g = _graph(op_type, shapes, consts, attrs, rng)
    verify(g)
    n = 3
    xs = [rng.standard_normal((n,) + g.tensors[i].shape[1:]).astype(np.float32) * 2 for i in g.inputs]
    model = build_model(g)
    if not g.inputs:      # constant-only op
        op = g.ops[0]
        want = opreg.get(op_type).ref(op, [g.tensors[i].data for i in op.inputs], [g.t(i) for i in op.inputs],
                                      [g.tensors["y"]])
        got = [o.numpy() for o in model([])]
        np.testing.assert_allclose(got[0].reshape(want[0].shape), want[0], rtol=1e-5, atol=1e-5)
        return
    want = run_batch(g, xs)[0]
    got = model(xs)[0].numpy()
    assert got.size == want.size, (got.shape, want.shape)
    np.testing.assert_allclose(got.reshape(want.shape), want, rtol=1e-5, atol=2e-5)
