"""Generated C for QUANTIZE (float32 -> int8, int8 -> int8) and DEQUANTIZE (int8 -> float32) against
TFLite Micro and the reference interpreter, bit for bit (float outputs to 1e-5, against the
reference), on 100 random inputs per case plus exact rounding ties and non-finite values. What the C
backend does not run (int16, uint8, per-channel, float16, DENSIFY) is refused with an EdgecError."""
from __future__ import annotations

import numpy as np
import pytest

from ccheck import check_c_exact, run_c
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir.interpret import run_batch
from edgec.ir.ops import default_attrs
from opcheck import random_inputs

Q = QuantParams
SHAPES = [(1, 6, 7), (1, 13), (1, 3, 5, 3), (1, 1, 1, 1, 29)]


def cases(op_type, specs) -> Graph:
    """specs: (shape, in dtype, in quant, out dtype, out quant); one input and output each."""
    g = Graph(name=op_type.lower())
    for k, (shape, idt, iq, odt, oq) in enumerate(specs):
        g.add_tensor(Tensor(f"x{k}", shape, idt, quant=iq))
        g.add_tensor(Tensor(f"y{k}", shape, odt, quant=oq))
        g.ops.append(Op(op_type, [f"x{k}"], [f"y{k}"], default_attrs(op_type)))
        g.inputs.append(f"x{k}")
        g.outputs.append(f"y{k}")
    return g


# -- QUANTIZE float32 -> int8 ----------------------------------------------------------------------

OUT_Q = [Q(0.05, 3), Q(0.25, -128), Q(0.007, 127), Q(1.3e-4, -5), Q(0.1, 0)]


def test_quantize_float():
    g = cases("QUANTIZE", [(SHAPES[k % 4], "float32", None, "int8", q) for k, q in enumerate(OUT_Q)])
    xs = random_inputs(g, 100)
    check_c_exact(g, inputs=[x * np.float32(40 * float(q.scale[0])) for x, q in zip(xs, OUT_Q)])
    # exact halves of the step: std::round sends them away from zero (numpy's round would not)
    rng = np.random.default_rng(0)
    ties = [((rng.integers(-300, 300, x.shape) + 0.5) * np.float32(q.scale[0])).astype(np.float32)
            for x, q in zip(xs, OUT_Q)]
    check_c_exact(g, inputs=ties)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")   # the reference's inf / NaN arithmetic
def test_quantize_float_extremes():
    # +-inf saturate, NaN goes to the zero point, huge values saturate, tiny ones round to zp
    g = cases("QUANTIZE", [((1, 12), "float32", None, "int8", Q(0.05, 3))])
    x = np.array([[np.inf, -np.inf, np.nan, 3e38, -3e38, 1e-30, -1e-30, 6.375, -6.525, 0.025, -0.025,
                   -6.5]], np.float32)
    check_c_exact(g, inputs=[x], tflm=False)
    assert run_c(g, [x])[0][0, :7].tolist() == [127, -128, 3, 127, -128, 3, 3]


# -- QUANTIZE int8 -> int8 (requantize) ------------------------------------------------------------

REQUANT = [(Q(0.05, 3), Q(0.031, -7)), (Q(0.05, 3), Q(0.2, 100)), (Q(0.05, 3), Q(0.05, 3)),
           (Q(0.02, -128), Q(0.0009, 0)), (Q(0.1, 127), Q(0.0999, -128)), (Q(1e-3, 0), Q(1.0, 0))]


def test_requantize():
    check_c_exact(cases("QUANTIZE", [(SHAPES[k % 4], "int8", a, "int8", b) for k, (a, b) in enumerate(REQUANT)]))


# -- DEQUANTIZE int8 -> float32 --------------------------------------------------------------------

def test_dequantize():
    qs = [Q(0.05, 3), Q(1.7e-3, -128), Q(0.3, 127), Q(1e-6, 0)]
    check_c_exact(cases("DEQUANTIZE", [(SHAPES[k], "int8", q, "float32", None) for k, q in enumerate(qs)]))


def test_quantize_chain_in_place():
    """float -> QUANTIZE -> QUANTIZE (requantize, may run in place) -> DEQUANTIZE -> float."""
    g = Graph(name="chain")
    for name, dt, q in [("x", "float32", None), ("a", "int8", Q(0.02, -3)), ("b", "int8", Q(0.05, 10)),
                        ("y", "float32", None)]:
        g.add_tensor(Tensor(name, (1, 5, 11), dt, quant=q))
    for t, i, o in [("QUANTIZE", "x", "a"), ("QUANTIZE", "a", "b"), ("DEQUANTIZE", "b", "y")]:
        g.ops.append(Op(t, [i], [o], default_attrs(t)))
    g.inputs, g.outputs = ["x"], ["y"]
    project = emit_c(g)
    assert project.plan.offsets["a"] == project.plan.offsets["b"]
    xs = random_inputs(g, 100)
    check_c_exact(g, inputs=[xs[0] * 2])
    np.testing.assert_allclose(run_c(g, xs)[0], run_batch(g, xs)[0], atol=1e-6)


# -- refusals --------------------------------------------------------------------------------------

@pytest.mark.parametrize("op_type,spec", [
    ("QUANTIZE", ((1, 4), "float32", None, "int16", Q(0.001, 0))),
    ("QUANTIZE", ((1, 4), "int16", Q(0.001, 0), "int8", Q(0.1, 0))),
    ("QUANTIZE", ((1, 4), "int8", Q(0.05, 3), "uint8", Q(0.05, 131))),
    ("QUANTIZE", ((1, 4), "float32", None, "int8", Q(np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4), axis=1))),
    ("DEQUANTIZE", ((1, 4), "int16", Q(0.001, 0), "float32", None)),
    ("DEQUANTIZE", ((1, 4), "float16", None, "float32", None)),
    ("DEQUANTIZE", ((1, 4), "int8", Q(np.array([0.1, 0.2, 0.3, 0.4]), np.zeros(4), axis=1), "float32", None)),
    ("DENSIFY", ((1, 4), "int8", Q(0.1, 0), "int8", Q(0.1, 0))),
], ids=["f32-int16", "int16-int8", "int8-uint8", "per-channel", "deq-int16", "deq-float16", "deq-per-channel",
        "densify"])
def test_refusals(op_type, spec):
    with pytest.raises(EdgecError, match=op_type):
        emit_c(cases(op_type, [spec]))
