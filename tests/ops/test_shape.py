"""RESHAPE, SQUEEZE, CONCATENATION, PAD, STRIDED_SLICE, TRANSPOSE, DEPTH_TO_SPACE, SPACE_TO_DEPTH: the
numpy reference against LiteRT's reference kernels and TFLite Micro, bit for bit.

Where TFLite Micro has no support the case runs against LiteRT only (tflm=False), each with the
reason: TFLM's STRIDED_SLICE ignores ellipsis_mask / new_axis_mask / offset (its Prepare then
rejects the output shape), needs begin/end/strides for every input dim and takes at most 4-D input; neither runtime implements a fused
activation on CONCATENATION; DEPTH_TO_SPACE / SPACE_TO_DEPTH have no int16 kernel anywhere; TFLM's
TRANSPOSE takes at most 5 dims (LiteRT's 6).
"""
from __future__ import annotations

import numpy as np
import pytest

from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from edgec.ir.interpret import run
from opcheck import check_bit_exact

DTYPES = ("float32", "int8", "int16")


def _quant(dtype):
    return {"int8": QuantParams(0.05, 3), "int16": QuantParams(0.001, 0)}.get(dtype)


def one_op(op_type, in_shapes, dtype, consts=(), **attrs) -> Graph:
    """A graph of one op: graph inputs of `in_shapes`, then constant operands; the output shape
    comes from the registry's shape inference (LiteRT's own output shape is compared to it)."""
    g = Graph(name=op_type.lower())
    names = []
    for k, s in enumerate(in_shapes):
        g.add_tensor(Tensor(f"x{k}", s, dtype, quant=_quant(dtype)))
        g.inputs.append(f"x{k}")
        names.append(f"x{k}")
    names += [g.const(f"c{k}", np.asarray(c, np.int32)) for k, c in enumerate(consts)]
    op = Op(op_type, names, ["y"], default_attrs(op_type, **attrs))
    (shape,) = opreg.get(op_type).shape(op, [g.t(n) for n in names])
    g.add_tensor(Tensor("y", shape, dtype, quant=_quant(dtype)))
    g.ops.append(op)
    g.outputs.append("y")
    return g


def out_shape(g):
    return g.tensors["y"].shape


# -- RESHAPE / SQUEEZE -----------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("src,target,want", [
    ((1, 4, 6), [1, -1, 3], (1, 8, 3)),
    ((1, 5, 3, 2), [1, 30], (1, 30)),
    ((1, 7), [1, 7, 1, 1], (1, 7, 1, 1)),
    ((1, 2, 3, 4, 5), [-1, 5, 4, 3, 2], (1, 5, 4, 3, 2)),
    ((1, 9), [1, 3, -1], (1, 3, 3)),
])
def test_reshape(dtype, src, target, want):
    g = one_op("RESHAPE", [src], dtype, [target])             # shape from the 2nd input
    assert out_shape(g) == want
    check_bit_exact(g)
    g = one_op("RESHAPE", [src], dtype, new_shape=target)     # shape from the options
    assert out_shape(g) == want
    check_bit_exact(g)


def test_reshape_input_wins_over_options():
    g = one_op("RESHAPE", [(1, 4, 6)], "float32", [[1, 24]], new_shape=[1, 6, 4])
    assert out_shape(g) == (1, 24)
    check_bit_exact(g)


@pytest.mark.parametrize("target", [[1, -1, -1], [1, 5], [1, -1, 7], [1, -2, 12]])
def test_reshape_rejects_bad_shapes(target):
    with pytest.raises(ValueError):
        one_op("RESHAPE", [(1, 4, 6)], "float32", [target])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("src,dims,want", [
    ((1, 4, 1, 6, 1), [2, -1], (1, 4, 6)),
    ((1, 4, 1, 6, 1), [], (4, 6)),
    ((1, 1, 5), [1], (1, 5)),
    ((1, 3, 1), [-1], (1, 3)),
])
def test_squeeze(dtype, src, dims, want):
    g = one_op("SQUEEZE", [src], dtype, squeeze_dims=dims)
    assert out_shape(g) == want
    check_bit_exact(g)


def test_squeeze_rejects_non_unit_dim():
    with pytest.raises(ValueError):
        one_op("SQUEEZE", [(1, 4, 1)], "float32", squeeze_dims=[1])


# -- CONCATENATION ---------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes,axis", [
    ([(1, 4, 2, 3), (1, 4, 5, 3), (1, 4, 1, 3)], -2),
    ([(1, 4, 2, 3), (1, 4, 2, 5)], 3),
    ([(1, 3, 7), (1, 1, 7), (1, 2, 7), (1, 5, 7)], 1),
    ([(1, 3), (1, 3)], 0),
    ([(1, 2, 3, 4), (1, 2, 3, 4), (1, 2, 3, 4)], -4),
    ([(1, 9)], 1),
])
def test_concatenation(dtype, shapes, axis):
    check_bit_exact(one_op("CONCATENATION", shapes, dtype, axis=axis))


def test_concatenation_int8_needs_shared_quantization():
    """LiteRT and TFLM both refuse an integer CONCATENATION whose inputs are quantized unlike its
    output (they copy raw values, no rescale), and so does the reference."""
    g = one_op("CONCATENATION", [(1, 2, 3), (1, 4, 3)], "int8", axis=1)
    g.tensors["x1"].quant = QuantParams(0.2, -7)
    with pytest.raises(ValueError, match="quantization"):
        run(g, [np.zeros((1, 2, 3), np.int8), np.zeros((1, 4, 3), np.int8)])


def test_concatenation_rejects_mismatched_inputs():
    with pytest.raises(ValueError):
        one_op("CONCATENATION", [(1, 4, 2), (1, 3, 2)], "float32", axis=2)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
def test_concatenation_fused_activation_reference(dtype):
    # LiteRT and TFLM both reject a fused activation here (concatenation.cc: activation must be
    # NONE), so the clamp is checked against its definition only.
    g = one_op("CONCATENATION", [(1, 2, 3), (1, 2, 3)], dtype, axis=1, fused_activation_function="RELU6")
    rng = np.random.default_rng(0)
    if dtype == "float32":
        xs = [rng.standard_normal((1, 2, 3)).astype(np.float32) * 8 for _ in range(2)]
        want = np.clip(np.concatenate(xs, 1), 0, 6)
    else:
        xs = [rng.integers(-128, 128, (1, 2, 3)).astype(np.int8) for _ in range(2)]
        want = np.clip(np.concatenate(xs, 1), 3, 3 + 120)  # zp + round(0 / .05) .. zp + round(6 / .05)
    np.testing.assert_array_equal(run(g, xs)[0], want)


# -- PAD -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(1,), (1, 5), (1, 3, 4), (1, 3, 4, 2), (1, 2, 3, 2, 3)])
def test_pad(dtype, shape):
    rng = np.random.default_rng(len(shape))
    pads = rng.integers(0, 4, (len(shape), 2))
    g = one_op("PAD", [shape], dtype, [pads])
    assert out_shape(g) == tuple(s + a + b for s, (a, b) in zip(shape, pads))
    check_bit_exact(g)


def test_pad_int8_fills_with_zero_point():
    g = one_op("PAD", [(1, 2)], "int8", [[[0, 0], [1, 1]]])
    y = run(g, [np.array([[7, -9]], np.int8)])[0]
    np.testing.assert_array_equal(y, [[3, 7, -9, 3]])
    check_bit_exact(g)


# -- STRIDED_SLICE ---------------------------------------------------------------------------------

# (input shape, begin, end, strides, attrs, runs on TFLM)
SLICES = [
    ((1, 5, 7, 3), [0, 1, 2, 0], [1, 4, 7, 3], [1, 1, 2, 1], {}, True),
    ((1, 5, 7, 3), [0, -1, 6, 0], [1, -6, 0, 3], [1, -1, -2, 1], {}, True),        # negative strides
    ((1, 5, 7, 3), [0, -4, -2, -3], [1, -1, -8, 3], [1, 2, -3, 1], {}, True),      # negative indices
    ((1, 5, 7, 3), [0, 3, 4, 1], [1, 4, 0, 2], [1, 1, -1, 1], dict(begin_mask=0b0010, end_mask=0b0100), True),
    ((1, 5, 7, 3), [0, -9, -99, 0], [1, 99, 99, 3], [1, 1, 3, 1], {}, True),         # clamped
    ((1, 5, 7, 3), [0, 2, 0, 1], [1, 3, 7, 2], [1, 1, 1, 1], dict(shrink_axis_mask=0b1010), True),
    ((1, 5, 7, 3), [0, -1, 0, 0], [1, 0, 7, 3], [1, 1, 1, 1], dict(shrink_axis_mask=0b0010), True),
    ((1, 5, 7, 3), [0, 1, 1, 1], [1, 2, 2, 2], [1, 1, 1, 1], dict(begin_mask=15, end_mask=15), True),
    ((1, 6), [0, 5], [1, 0], [1, -2], dict(end_mask=2), True),
    # LiteRT only: TFLM reads begin/end/strides for every input dim (no partial specs), ignores
    # ellipsis_mask / new_axis_mask / offset, and takes at most 4-D input
    ((1, 6, 5), [0, 1], [1, 5], [1, 2], {}, False),                                # fewer specs than dims
    ((1, 5, 7, 3), [0, 1], [0, 3], [1, 1], dict(ellipsis_mask=1), False),
    ((1, 5, 7, 3), [0, 0, 1], [1, 0, 3], [1, 1, 1], dict(ellipsis_mask=2), False),
    ((1, 5, 7, 3), [0, 4, 0], [1, 0, 0], [1, -1, 1], dict(ellipsis_mask=4), False),
    ((1, 5, 7, 3), [0, 0, 1, 0, 0], [1, 0, 4, 7, 3], [1, 1, 1, 2, 1], dict(new_axis_mask=2), False),
    ((1, 5, 7), [0, 0, 0, 2], [1, 0, 0, 5], [1, 1, 1, 1], dict(new_axis_mask=6, shrink_axis_mask=0), False),
    ((1, 5, 7, 3), [0, 0, 2], [0, 0, 3], [1, 1, 1], dict(ellipsis_mask=1, new_axis_mask=2,
                                                          shrink_axis_mask=4), False),
    ((1, 5, 7, 3), [0, 1, 2, 0], [1, 3, 4, 3], [1, 1, 2, 1], dict(offset=True), False),
    ((1, 5, 7, 3), [0, 4, 6, 0], [1, -3, -4, 2], [1, -1, -2, 1], dict(offset=True), False),
    ((1, 2, 5, 7, 3), [0, 1, -1, 1, 0], [1, 2, -6, 6, 3], [1, 1, -2, 2, 1], {}, False),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", range(len(SLICES)))
def test_strided_slice_cases(dtype, case):
    shape, begin, end, strides, attrs, on_tflm = SLICES[case]
    check_bit_exact(one_op("STRIDED_SLICE", [shape], dtype, [begin, end, strides], **attrs), tflm=on_tflm)


def _random_slice(rng):
    rank = int(rng.integers(1, 6))
    shape = (1,) + tuple(int(v) for v in rng.integers(1, 7, rank - 1))
    count = rank if rng.random() < 0.75 else int(rng.integers(1, rank + 1))
    begin, end, strides = [], [], []
    for i in range(count):
        s = shape[i]
        begin.append(int(rng.integers(-s - 2, s + 3)))
        end.append(int(rng.integers(-s - 2, s + 3)))
        strides.append(int(rng.integers(1, 4)) * (1 if rng.random() < 0.6 else -1))

    def mask(p):
        return int(sum(1 << i for i in range(count) if rng.random() < p))

    attrs = dict(begin_mask=mask(0.3), end_mask=mask(0.3), shrink_axis_mask=mask(0.2))
    for i in range(count):
        if attrs["shrink_axis_mask"] >> i & 1:   # as TF's converter emits: stride 1, index in range
            strides[i] = 1
            begin[i] = int(rng.integers(-shape[i], shape[i]))
    exotic = rank == 5 or count < rank
    if rng.random() < 0.2:
        attrs["ellipsis_mask"] = 1 << int(rng.integers(count))
        exotic = True
    if rng.random() < 0.2:
        attrs["new_axis_mask"] = mask(0.3)
        exotic = exotic or attrs["new_axis_mask"] != 0
    return shape, begin, end, strides, attrs, not exotic


@pytest.mark.parametrize("dtype", DTYPES)
def test_strided_slice_random_sweep(dtype):
    """Seeded random slices over every mask; each checked against LiteRT (and TFLM when it has
    the features)."""
    rng = np.random.default_rng({"float32": 1, "int8": 2, "int16": 3}[dtype])
    checked = tflm_checked = 0
    while checked < 80:
        shape, begin, end, strides, attrs, on_tflm = _random_slice(rng)
        try:
            g = one_op("STRIDED_SLICE", [shape], dtype, [begin, end, strides], **attrs)
        except ValueError:        # e.g. more than 5 dims once new axes are added
            continue
        if not out_shape(g) or 0 in out_shape(g):
            continue              # scalar / empty outputs cannot be batched by the harness
        check_bit_exact(g, n=1, seed=checked, tflm=on_tflm)
        checked += 1
        tflm_checked += on_tflm
    assert tflm_checked >= 25


# -- TRANSPOSE -------------------------------------------------------------------------------------

# (input shape, perm): every rank 1..6, the batch axis kept or moved, identity, the 4-D perms of
# Keras' MultiHeadAttention ([0, 2, 1, 3], [0, 2, 3, 1]) and NHWC <-> NCHW; rank 6 is LiteRT only
TRANSPOSES = [((1,), [0]), ((1, 7), [1, 0]), ((1, 3, 5), [0, 2, 1]), ((1, 5, 3), [2, 0, 1]),
              ((1, 7, 3, 5), [0, 2, 1, 3]), ((1, 7, 3, 5), [0, 2, 3, 1]), ((1, 6, 5, 3), [0, 3, 1, 2]),
              ((1, 6, 5, 3), [0, 1, 2, 3]), ((1, 3, 2, 5), [3, 1, 0, 2]), ((1, 2, 3, 4, 5), [0, 4, 2, 1, 3]),
              ((1, 3, 1, 5, 2), [0, 3, 4, 2, 1])]
TRANSPOSES_6D = [((1, 2, 3, 2, 3, 2), [0, 5, 3, 1, 4, 2]), ((1, 3, 2, 1, 2, 3), [5, 4, 3, 2, 1, 0])]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,perm", TRANSPOSES + TRANSPOSES_6D)
def test_transpose(dtype, shape, perm):
    g = one_op("TRANSPOSE", [shape], dtype, [perm])
    assert out_shape(g) == tuple(shape[p] for p in perm)
    check_bit_exact(g, tflm=len(shape) <= 5)


def test_transpose_moves_values():
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    g = one_op("TRANSPOSE", [x.shape], "float32", [[0, 3, 1, 2]])
    y = run(g, [x])[0]
    assert y.shape == (1, 4, 2, 3) and y[0, 3, 1, 2] == x[0, 1, 2, 3]


@pytest.mark.parametrize("shape,perm", [((1, 3, 4), [0, 1]), ((1, 3, 4), [0, 1, 3]), ((1, 3, 4), [0, 1, 1]),
                                        ((1, 3, 4), [0, -1, 1]), ((1, 2, 1, 2, 1, 2, 1), list(range(7)))])
def test_transpose_rejects_bad_perms(shape, perm):
    with pytest.raises(ValueError, match="TRANSPOSE"):
        one_op("TRANSPOSE", [shape], "float32", [perm])


def test_transpose_perm_must_be_int32():
    g = one_op("TRANSPOSE", [(1, 3, 4)], "float32", [[0, 2, 1]])
    op = g.ops[0]
    op.inputs[1] = g.const("perm64", np.array([0, 2, 1], np.int64))
    with pytest.raises(ValueError, match="int32"):
        opreg.get("TRANSPOSE").shape(op, [g.t(n) for n in op.inputs])


@pytest.mark.parametrize("shape,perm", [((1, 7, 3, 5), [0, 2, 3, 1]), ((1, 5, 3), [2, 0, 1])])
def test_transpose_tf_lowering_matches_reference(shape, perm):
    """The trainer's lowering on a batch of 3, with the batch axis kept and moved."""
    from edgec.ir.interpret import run_batch
    from edgec.train import build_model
    g = one_op("TRANSPOSE", [shape], "float32", [perm])
    x = np.random.default_rng(0).standard_normal((3,) + shape[1:]).astype(np.float32)
    want = run_batch(g, [x])[0]
    got = build_model(g)([x])[0].numpy()
    np.testing.assert_array_equal(got.reshape(want.shape), want)


# -- DEPTH_TO_SPACE / SPACE_TO_DEPTH ---------------------------------------------------------------

@pytest.mark.parametrize("dtype", ["float32", "int8"])   # int16: no kernel in LiteRT or TFLM
@pytest.mark.parametrize("shape,block", [((1, 3, 4, 8), 2), ((1, 1, 1, 9), 3), ((1, 2, 5, 12), 2),
                                         ((1, 3, 2, 5), 1)])
def test_depth_to_space(dtype, shape, block):
    g = one_op("DEPTH_TO_SPACE", [shape], dtype, block_size=block)
    n, h, w, c = shape
    assert out_shape(g) == (n, h * block, w * block, c // block ** 2)
    check_bit_exact(g)


@pytest.mark.parametrize("dtype", ["float32", "int8"])
@pytest.mark.parametrize("shape,block", [((1, 6, 4, 3), 2), ((1, 3, 9, 2), 3), ((1, 4, 4, 1), 4),
                                         ((1, 2, 3, 5), 1)])
def test_space_to_depth(dtype, shape, block):
    g = one_op("SPACE_TO_DEPTH", [shape], dtype, block_size=block)
    n, h, w, c = shape
    assert out_shape(g) == (n, h // block, w // block, c * block ** 2)
    check_bit_exact(g)


def test_depth_space_round_trip():
    x = np.arange(2 * 4 * 12, dtype=np.float32).reshape(1, 2, 4, 12)
    d2s = one_op("DEPTH_TO_SPACE", [(1, 2, 4, 12)], "float32", block_size=2)
    y = run(d2s, [x])[0]
    s2d = one_op("SPACE_TO_DEPTH", [y.shape], "float32", block_size=2)
    np.testing.assert_array_equal(run(s2d, [y])[0], x)
    # TF's DCR layout: output[0, 2h + by, 2w + bx, c] = input[0, h, w, (2 by + bx) * 3 + c]
    assert y[0, 3, 5, 1] == x[0, 1, 2, (2 * 1 + 1) * 3 + 1]


def test_block_size_checks():
    with pytest.raises(ValueError):
        one_op("DEPTH_TO_SPACE", [(1, 2, 2, 6)], "float32", block_size=2)
    with pytest.raises(ValueError):
        one_op("SPACE_TO_DEPTH", [(1, 3, 4, 1)], "float32", block_size=2)
