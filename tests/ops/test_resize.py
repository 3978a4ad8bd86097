"""RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR: the numpy reference against LiteRT's reference
kernels and TFLite Micro, bit for bit (float32 to 1e-5), over sizes, align_corners and
half_pixel_centers. TFLite Micro has no int16 RESIZE_BILINEAR (float32 and int8 only), so those
cases run against LiteRT alone."""
from __future__ import annotations

import numpy as np
import pytest

from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.interpret import run
from edgec.ir.ops import default_attrs
from opcheck import check_bit_exact

DTYPES = ("float32", "int8", "int16")
OPS = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
FLAGS = [(False, False), (True, False), (False, True)]


def _quant(dtype):
    return {"int8": QuantParams(0.05, -4), "int16": QuantParams(0.001, 0)}.get(dtype)


def resize(op_type, in_hw, out_hw, dtype, channels=3, align=False, half=False) -> Graph:
    g = Graph(name=op_type.lower())
    g.add_tensor(Tensor("x", (1, *in_hw, channels), dtype, quant=_quant(dtype)))
    g.inputs.append("x")
    size = g.const("size", np.array(out_hw, np.int32))
    op = Op(op_type, ["x", size], ["y"], default_attrs(op_type, align_corners=align,
                                                        half_pixel_centers=half))
    (shape,) = opreg.get(op_type).shape(op, [g.t("x"), g.t(size)])
    g.add_tensor(Tensor("y", shape, dtype, quant=_quant(dtype)))
    g.ops.append(op)
    g.outputs.append("y")
    return g


def _tflm(op_type, dtype):
    return not (op_type == "RESIZE_BILINEAR" and dtype == "int16")


SIZES = [((4, 4), (8, 8)), ((3, 5), (7, 4)), ((7, 9), (3, 4)), ((1, 5), (1, 9)), ((5, 3), (1, 1)),
         ((6, 6), (6, 6)), ((2, 3), (13, 11)), ((9, 1), (4, 3))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", OPS)
@pytest.mark.parametrize("flags", FLAGS, ids=["plain", "align_corners", "half_pixel"])
def test_resize_sizes(op_type, dtype, flags):
    for in_hw, out_hw in SIZES:
        g = resize(op_type, in_hw, out_hw, dtype, align=flags[0], half=flags[1])
        assert g.tensors["y"].shape == (1, *out_hw, 3)
        check_bit_exact(g, n=2, tflm=_tflm(op_type, dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nearest_align_corners_and_half_pixel(dtype):
    # both flags at once: TFLite's nearest-neighbour kernels accept it (bilinear does not)
    for in_hw, out_hw in SIZES[:5]:
        check_bit_exact(resize("RESIZE_NEAREST_NEIGHBOR", in_hw, out_hw, dtype, align=True, half=True))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", OPS)
def test_resize_random_sweep(op_type, dtype):
    rng = np.random.default_rng(OPS.index(op_type) * 3 + DTYPES.index(dtype))
    for k in range(25):
        ih, iw, oh, ow = (int(v) for v in rng.integers(1, 16, 4))
        align, half = FLAGS[int(rng.integers(3))]
        g = resize(op_type, (ih, iw), (oh, ow), dtype, channels=int(rng.integers(1, 5)),
                   align=align, half=half)
        check_bit_exact(g, n=1, seed=k, tflm=_tflm(op_type, dtype))


def test_bilinear_int8_extremes():
    """Saturated inputs and exact-half weights: the integer kernel's rounding (half away from
    zero on the 20-bit sum) decides these."""
    g = resize("RESIZE_BILINEAR", (2, 2), (4, 4), "int8", channels=1)
    x = np.array([[[[-128], [127]], [[127], [-128]]], [[[-1], [0]], [[0], [-1]]]], np.int8)
    check_bit_exact(g, inputs=[x.reshape(2, 2, 2, 1)])


def test_bilinear_rejects_align_corners_with_half_pixel():
    with pytest.raises(ValueError):
        resize("RESIZE_BILINEAR", (3, 3), (5, 5), "float32", align=True, half=True)


def test_nearest_copies_values():
    g = resize("RESIZE_NEAREST_NEIGHBOR", (2, 2), (4, 4), "float32", channels=1)
    x = np.array([1, 2, 3, 4], np.float32).reshape(1, 2, 2, 1)
    y = run(g, [x])[0][0, :, :, 0]
    np.testing.assert_array_equal(y, [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]])
