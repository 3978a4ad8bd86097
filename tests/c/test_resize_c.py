"""Generated C for RESIZE_BILINEAR and RESIZE_NEAREST_NEIGHBOR against TFLite Micro and the reference
interpreter: int8 bit for bit, float32 to 1e-5, over sizes (up, down, odd ratios, 1-pixel edges),
align_corners and half_pixel_centers. Each graph holds many resizes side by side (own input and
output each), checked on 100 random inputs."""
from __future__ import annotations

import numpy as np
import pytest

from ccheck import check_c_exact
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs

DTYPES = ("float32", "int8")
OPS = ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
FLAGS = [(False, False), (True, False), (False, True)]
SIZES = [((4, 4), (8, 8)), ((3, 5), (7, 4)), ((7, 9), (3, 4)), ((1, 5), (1, 9)), ((5, 3), (1, 1)),
         ((6, 6), (6, 6)), ((2, 3), (13, 11)), ((9, 1), (4, 3)), ((5, 7), (10, 21))]


def quant(dtype):
    return {"int8": QuantParams(0.05, -4), "int16": QuantParams(0.001, 0)}.get(dtype)


def resizes(op_type, dtype, cases) -> Graph:
    """cases: (in_hw, out_hw, channels, align, half); one input and output per case."""
    g = Graph(name=op_type.lower())
    for k, (in_hw, out_hw, ch, align, half) in enumerate(cases):
        x, y = f"x{k}", f"y{k}"
        g.add_tensor(Tensor(x, (1, *in_hw, ch), dtype, quant=quant(dtype)))
        size = g.const(f"size{k}", np.array(out_hw, np.int32))
        op = Op(op_type, [x, size], [y], default_attrs(op_type, align_corners=align, half_pixel_centers=half))
        (shape,) = opreg.get(op_type).shape(op, [g.t(x), g.t(size)])
        g.add_tensor(Tensor(y, shape, dtype, quant=quant(dtype)))
        g.ops.append(op)
        g.inputs.append(x)
        g.outputs.append(y)
    return g


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", OPS)
@pytest.mark.parametrize("flags", FLAGS, ids=["plain", "align_corners", "half_pixel"])
def test_resize_sizes(op_type, dtype, flags):
    channels = [3, 1, 5, 2, 7, 3, 1, 4, 2]
    check_c_exact(resizes(op_type, dtype, [(i, o, c, *flags) for (i, o), c in zip(SIZES, channels)]))


@pytest.mark.parametrize("dtype", DTYPES + ("int16",))
def test_nearest_align_corners_and_half_pixel(dtype):
    # both flags at once: TFLite's nearest-neighbour kernels accept it (bilinear does not)
    check_c_exact(resizes("RESIZE_NEAREST_NEIGHBOR", dtype, [(i, o, 3, True, True) for i, o in SIZES]))


def test_nearest_int16_is_a_copy():
    check_c_exact(resizes("RESIZE_NEAREST_NEIGHBOR", "int16", [(i, o, 2, *f) for (i, o) in SIZES[:4] for f in FLAGS]),
                  tflm=False)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("op_type", OPS)
def test_resize_random_sweep(op_type, dtype):
    rng = np.random.default_rng(OPS.index(op_type) * 3 + DTYPES.index(dtype) + 100)
    cases = []
    for _ in range(30):
        ih, iw, oh, ow = (int(v) for v in rng.integers(1, 16, 4))
        cases.append(((ih, iw), (oh, ow), int(rng.integers(1, 6)), *FLAGS[int(rng.integers(3))]))
    check_c_exact(resizes(op_type, dtype, cases))


def test_bilinear_int8_extremes():
    """Saturated inputs and exact-half weights: the rounding of the 20-bit sum decides these."""
    g = resizes("RESIZE_BILINEAR", "int8", [((2, 2), (4, 4), 1, False, False), ((2, 2), (5, 3), 1, False, True),
                                            ((2, 2), (3, 3), 1, True, False)])
    rng = np.random.default_rng(3)
    corners = np.array([[-128, 127], [127, -128], [-1, 0], [0, -1], [-128, -128], [127, 127], [1, -1]], np.int8)
    x = np.concatenate([corners[rng.integers(0, len(corners), (100, 2))].reshape(100, 2, 2, 1)])
    check_c_exact(g, inputs=[x, x.copy(), x.copy()])


def test_bilinear_int16_refused():
    with pytest.raises(EdgecError, match="RESIZE_BILINEAR"):
        emit_c(resizes("RESIZE_BILINEAR", "int16", [((3, 3), (5, 5), 2, False, False)]))
