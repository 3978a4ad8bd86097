"""C kernels of RELU, RELU6, LOGISTIC, TANH, HARD_SWISH, SOFTMAX, PRELU, LEAKY_RELU: the generated C
against TFLite Micro and the reference interpreter, bit for bit (float32 to 1e-5).

Few graphs, many inputs: each graph fans one input out to every op under test (one output each),
so one build checks all of them. int8 sample 0 holds every int8 value (the element-wise LUTs are
checked on their whole domain); the other samples are random, plus structured softmax rows."""
from __future__ import annotations

import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest

from ccheck import check_c_exact, run_c
from toolchain import need
from edgec.backends.c.emit import emit_c
from edgec.errors import EdgecError
from edgec.ir import Graph, Op, QuantParams, Tensor
from edgec.ir import ops as opreg
from edgec.ir.ops import default_attrs
from edgec.ir.ops.activation import prelu_geometry
from edgec.paths import data_dir

N = 100   # random samples per int8 case (plus the structured ones)


def seeded(*key) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def rand_q(rng) -> QuantParams:
    return QuantParams(float(np.exp(rng.uniform(np.log(0.003), np.log(0.3)))), int(rng.integers(-60, 61)))


def fixed_q(op: str) -> QuantParams:
    return QuantParams(*opreg.get(op).out_quant["int8"])


class Fanout:
    """One input `x` feeding any number of activation ops, each output a graph output."""

    def __init__(self, shape, dtype="float32", q=None):
        self.g = Graph(name="act_fanout")
        self.g.add_tensor(Tensor("x", tuple(shape), dtype, quant=q))
        self.g.inputs = ["x"]
        self.dtype, self.shape = dtype, tuple(shape)

    def add(self, op, q=None, alpha_t=None, alpha_q=None, x="x", **attrs):
        k = len(self.g.ops)
        ins = [x]
        shape = self.g.tensors[x].shape
        if alpha_t is not None:   # PRELU's alpha tensor
            self.g.add_tensor(Tensor(f"alpha{k}", alpha_t.shape, self.dtype, data=alpha_t, quant=alpha_q))
            ins.append(f"alpha{k}")
            shape = tuple(np.broadcast_shapes(shape, alpha_t.shape))
        y = f"y{k}_{op.lower()}"
        self.g.add_tensor(Tensor(y, shape, self.dtype, quant=q))
        self.g.ops.append(Op(op, ins, [y], default_attrs(op, **attrs), name=y))
        self.g.outputs.append(y)
        return y


def int8_inputs(shape, n=N, seed=0, softmax_rows=True):
    """For a graph input of `shape` (batch 1). Sample 0: every int8 value (cycled over the tensor,
    shuffled); then n random samples; then rows all equal, all at one extreme, and one peak over
    the minimum (softmax edge cases)."""
    rng = np.random.default_rng(seed)
    shape = tuple(shape[1:])
    size = int(np.prod(shape))
    assert size >= 256
    every = np.resize(rng.permutation(np.arange(-128, 128)), size).reshape((1,) + tuple(shape))
    parts = [every, rng.integers(-128, 128, (n,) + tuple(shape))]
    if softmax_rows:
        depth = shape[-1]
        peak = np.full(shape, -128)
        peak[..., depth // 2] = 127
        parts += [peak[None], (peak + 100)[None].clip(-128, 127)]
        if depth < 512:   # 512 equal logits reach TFLM's sum-of-exps limit (it aborts)
            parts += [np.full((1,) + shape, v) for v in (0, -128, 127)]
    return [np.concatenate(parts).astype(np.int8)]


def float_inputs(shape, n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n,) + tuple(shape[1:])).astype(np.float32) * 4
    special = np.array([-20, -16.7, -9.5, -9, -3.5, -3, -1e-3, 0, 1e-3, 3, 3.5, 6, 9, 16.7, 20], np.float32)
    x[0].reshape(-1)[:special.size] = special[:x[0].size]
    return [x]


def alpha_for(shape, rng, dtype):
    """A PRELU alpha broadcasting to `shape`: a random suffix of it with random axes set to 1."""
    tail = shape[1:]
    a_shape = tuple(d if rng.random() < 0.6 else 1 for d in tail[int(rng.integers(0, len(tail))):])
    if dtype == "float32":
        return rng.uniform(-0.6, 0.6, a_shape).astype(np.float32)
    return rng.integers(-128, 128, a_shape).astype(np.int8)


# -- float32 ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 5, 7, 3), (1, 13), (1, 2, 3, 4, 5)], ids=str)
def test_float_all_ops(shape):
    rng = seeded("float", shape)
    f = Fanout(shape)
    for op in ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH"):
        f.add(op)
    for beta in (1.0, 0.37, 3.0):
        f.add("SOFTMAX", beta=beta)
    for alpha in (0.2, -0.3, 1.5, 0.0):
        f.add("LEAKY_RELU", alpha=alpha)
    for _ in range(3):
        f.add("PRELU", alpha_t=alpha_for(shape, rng, "float32"))
    check_c_exact(f.g, inputs=float_inputs(shape))


@pytest.mark.parametrize("x_shape,alpha_shapes", [
    ((1, 5, 7, 3), [(3,), (1, 1, 3), (7, 3), (5, 1, 1), (5, 7, 3), (1,), (1, 5, 7, 3)]),
    ((1, 5, 1, 3), [(7, 1), (1, 7, 3), (5, 7, 1)]),           # alpha broadcasts x too
], ids=["alpha_bcast", "x_bcast"])
def test_prelu_float_broadcast(x_shape, alpha_shapes):
    rng = seeded("prelu", x_shape)
    f = Fanout(x_shape)
    for s in alpha_shapes:
        f.add("PRELU", alpha_t=rng.uniform(-0.6, 0.6, s).astype(np.float32))
    check_c_exact(f.g, inputs=float_inputs(x_shape, n=20))


def test_prelu_geometry_collapses():
    assert prelu_geometry((1, 5, 7, 3), (3,), (1, 5, 7, 3)) == ([35, 3], [3, 1], [0, 1])
    assert prelu_geometry((1, 5, 7, 3), (5, 7, 3), (1, 5, 7, 3)) == ([105], [1], [1])
    assert prelu_geometry((1, 5, 7, 3), (5, 1, 1), (1, 5, 7, 3)) == ([5, 21], [21, 1], [1, 0])
    assert prelu_geometry((1, 5, 1, 3), (7, 1), (1, 5, 7, 3)) == ([5, 7, 3], [3, 0, 1], [0, 1, 0])
    assert prelu_geometry((1, 1), (1,), (1, 1)) == ([1], [0], [0])


# -- int8 ------------------------------------------------------------------------------------------

INT8_SHAPES = [(1, 3, 7, 13), (1, 273), (1, 2, 11, 13), (1, 5, 61), (1, 17, 17), (1, 4, 3, 23)]


@pytest.mark.parametrize("k", range(len(INT8_SHAPES)))
def test_int8_all_ops_random_quant(k):
    """Every op at random quantizations (and attributes) on one input, every int8 value included."""
    shape = INT8_SHAPES[k]
    rng = seeded("int8", k)
    qi = rand_q(rng)
    f = Fanout(shape, "int8", qi)
    f.add("RELU", rand_q(rng))
    f.add("RELU", QuantParams(float(qi.scale[0]) * float(rng.uniform(0.2, 0.9)), int(rng.integers(-128, 0))))
    f.add("RELU6", qi)
    f.add("LOGISTIC", fixed_q("LOGISTIC"))
    f.add("TANH", fixed_q("TANH"))
    f.add("HARD_SWISH", rand_q(rng))
    f.add("LEAKY_RELU", rand_q(rng), alpha=float(rng.uniform(-1.0, 2.0)))
    f.add("LEAKY_RELU", rand_q(rng), alpha=[0.1, 0.5, -0.25, 1.3, 0.0, 0.01][k])
    f.add("SOFTMAX", fixed_q("SOFTMAX"), beta=[1.0, 0.5, 2.0, 0.01, 1.0, 0.3][k])
    for _ in range(2):
        qa = QuantParams(float(rng.uniform(0.001, 0.01)), int(rng.integers(-20, 21)))
        f.add("PRELU", rand_q(rng), alpha_t=alpha_for(shape, rng, "int8"), alpha_q=qa)
    check_c_exact(f.g, inputs=int8_inputs(shape, seed=k))


@pytest.mark.parametrize("scale,zp", [(1 / 16, 0), (0.5, -128), (0.002, 30), (0.37, 127)], ids=str)
def test_int8_extreme_input_scales(scale, zp):
    """Coarse and fine input scales (LOGISTIC/TANH's input radius clamps most or none of the range);
    RELU at output/input scale ratios below, at and above 1; LEAKY_RELU at every alpha sign."""
    qi = QuantParams(scale, zp)
    f = Fanout((1, 256), "int8", qi)
    for op in ("LOGISTIC", "TANH"):
        f.add(op, fixed_q(op))
    f.add("RELU6", qi)
    f.add("HARD_SWISH", QuantParams(scale / 50, -20))
    for ratio in (0.3, 1.7, 6.0):
        f.add("RELU", QuantParams(scale / ratio, -100))
    f.add("RELU", qi)                                   # same quantization: a plain clamp
    for alpha in (0.1, 0.5, -0.25, 1.3, 0.0):
        f.add("LEAKY_RELU", QuantParams(scale * 0.8, 5), alpha=alpha)
    f.add("SOFTMAX", fixed_q("SOFTMAX"), beta=1.0)
    check_c_exact(f.g, inputs=int8_inputs((1, 256), n=20))


def test_relu_int8_clamp_or_lut():
    """RELU6 and a RELU that does not rescale emit a clamp (no table); a rescaling RELU a LUT."""
    qi = QuantParams(0.05, -20)
    f = Fanout((1, 300), "int8", qi)
    f.add("RELU6", qi)
    f.add("RELU", qi)
    f.add("RELU", QuantParams(0.03, -128))
    src = emit_c(f.g).files["model.c"].decode()
    assert src.count(".lut = NULL") == 2 and src.count("static const int8_t") == 1
    assert ".act_min = -20" in src and ".act_max = 100" in src      # 6 / 0.05 = 120 steps
    check_c_exact(f.g, inputs=int8_inputs((1, 300), n=20))


@pytest.mark.parametrize("shape", [(1, 10), (1, 3, 5, 7), (1, 4, 1), (1, 2, 256), (1, 1000)], ids=str)
def test_softmax_int8(shape):
    rng = seeded("softmax", shape)
    q = (QuantParams(float(rng.uniform(0.05, 0.2)), int(rng.integers(-60, 61))) if shape[-1] == 1000
         else rand_q(rng))
    f = Fanout(shape, "int8", q)
    # (1000 classes at beta 0.01 would reach TFLM's sum-of-exps limit on every row: refused)
    for beta in (1.0, 0.5, 2.0, 0.3 if shape[-1] == 1000 else 0.01):
        f.add("SOFTMAX", fixed_q("SOFTMAX"), beta=beta)
    size = int(np.prod(shape))
    xs = int8_inputs(shape, seed=1) if size >= 256 else \
        [np.concatenate([int8_inputs((1, 256), n=N)[0][:, :size].reshape((-1,) + shape[1:]),
                         np.full((1,) + shape[1:], 127, np.int8), np.zeros((1,) + shape[1:], np.int8)])]
    check_c_exact(f.g, inputs=xs)


def test_softmax_int8_sum_of_exps_limit():
    """511 equal logits are fine; at 512 TFLM aborts and the reference raises, the C kernel outputs
    -128 (the exact result of the wider shift). When every row must reach 512, compiling refuses."""
    q, qo = QuantParams(0.1, 0), fixed_q("SOFTMAX")
    ok = Fanout((1, 511), "int8", q)
    ok.add("SOFTMAX", qo, beta=1.0)
    check_c_exact(ok.g, inputs=[np.zeros((1, 511), np.int8)])
    wide = Fanout((1, 2, 512), "int8", q)
    wide.add("SOFTMAX", qo, beta=1.0)
    x = np.zeros((2, 2, 512), np.int8)
    x[1, 1, 3] = 127                                   # a peaked row: the reference's values
    got = run_c(wide.g, [x])[0]
    assert (got[0] == -128).all() and (got[1, 0] == -128).all()
    one = Fanout((1, 512), "int8", q)                 # the peaked row alone: as the reference
    one.add("SOFTMAX", qo, beta=1.0)
    check_c_exact(one.g, inputs=[x[1:, 1]])
    np.testing.assert_array_equal(got[1, 1], run_c(one.g, [x[1:, 1]])[0][0])
    tiny = Fanout((1, 600), "int8", QuantParams(1e-5, 0))   # exp(-255 * 1e-5) ~ 1: every row aborts
    tiny.add("SOFTMAX", qo, beta=1.0)
    with pytest.raises(EdgecError, match="reaches 512"):
        emit_c(tiny.g)
    fine = Fanout((1, 600), "int8", QuantParams(1e-5, 0))
    fine.add("SOFTMAX", qo, beta=1000.0)                # a peaked row stays below 512
    emit_c(fine.g)


def test_prelu_int8_every_x_alpha_pair():
    """All 65536 (x, alpha) pairs at one quantization with a non-zero alpha zero point."""
    v = np.arange(-128, 128, dtype=np.int8)
    f = Fanout((1, 256, 256), "int8", QuantParams(0.15807, 31))
    grid = np.broadcast_to(v.reshape(1, 1, 256), (1, 256, 256)).copy()
    f.add("PRELU", QuantParams(0.25989, 8), alpha_t=grid, alpha_q=QuantParams(0.00998, -43))
    f.add("PRELU", QuantParams(0.02, -100), alpha_t=v.reshape(1, 256), alpha_q=QuantParams(0.004, 7))
    x = np.broadcast_to(v.reshape(1, 256, 1), (1, 256, 256)).copy()
    check_c_exact(f.g, inputs=[np.concatenate([x, x.transpose(0, 2, 1)])])


# -- in place --------------------------------------------------------------------------------------

def _chain(dtype):
    rng = seeded("chain", dtype)
    shape = (1, 5, 7, 11)
    f = Fanout(shape, dtype, QuantParams(0.05, 3) if dtype == "int8" else None)
    q = (lambda: rand_q(rng)) if dtype == "int8" else (lambda: None)
    y = f.add("LEAKY_RELU", q(), alpha=0.2)
    y = f.add("HARD_SWISH", q(), x=y)
    y = f.add("PRELU", q(), alpha_t=alpha_for(shape, rng, dtype), x=y,
              alpha_q=QuantParams(0.004, 3) if dtype == "int8" else None)
    y = f.add("TANH", fixed_q("TANH") if dtype == "int8" else None, x=y)
    y = f.add("RELU", q(), x=y)
    q6 = f.g.tensors[y].quant
    y = f.add("RELU6", q6, x=y)
    y = f.add("LOGISTIC", fixed_q("LOGISTIC") if dtype == "int8" else None, x=y)
    y = f.add("SOFTMAX", fixed_q("SOFTMAX") if dtype == "int8" else None, x=y, beta=1.0)
    f.g.outputs = [y]
    return f.g, shape


@pytest.mark.parametrize("dtype", ["int8", "float32"])
def test_chain_runs_in_place(dtype):
    """Every op after the first writes over its dying input: the arena is one tensor."""
    g, shape = _chain(dtype)
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    assert emit_c(g).arena_size == -(-nbytes // 16) * 16
    xs = int8_inputs(shape, seed=3) if dtype == "int8" else float_inputs(shape)
    check_c_exact(g, inputs=xs)


# -- refusals and portability -----------------------------------------------------------------------

@pytest.mark.parametrize("op", ["RELU", "RELU6", "LOGISTIC", "TANH", "SOFTMAX", "LEAKY_RELU"])
def test_int16_is_refused(op):
    q = QuantParams(1e-3, 0)
    f = Fanout((1, 8), "int16", q)
    f.add(op, QuantParams(*opreg.get(op).out_quant["int16"]) if isinstance(opreg.get(op).out_quant, dict)
          else q)
    with pytest.raises(EdgecError, match="float32 and int8"):
        emit_c(f.g)


def test_unsupported_quantization_is_refused():
    f = Fanout((1, 8), "int8", QuantParams(0.5, 0))
    f.add("HARD_SWISH", QuantParams(0.001, 0))          # output scale below s_in / 128
    with pytest.raises(EdgecError, match="HARD_SWISH"):
        emit_c(f.g)
    g = Fanout((1, 8), "int8", QuantParams(1e-9, 0))
    g.add("SOFTMAX", fixed_q("SOFTMAX"), beta=1.0)      # beta * s_in too small for TFLite
    with pytest.raises(EdgecError, match="too small"):
        emit_c(g.g)


KERNELS = [f"ec_{op}_{t}.c" for op in ("relu", "relu6", "logistic", "tanh", "hard_swish", "softmax",
                                        "prelu", "leaky_relu") for t in ("s8", "f32")]
COMPILERS = [("gcc", []), ("clang", []),
             ("arm-none-eabi-gcc", ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"]),
             ("aarch64-linux-gnu-gcc", [])]


@pytest.mark.parametrize("cc,flags", COMPILERS, ids=[c for c, _ in COMPILERS])
def test_kernels_compile_warning_free(cc, flags, tmp_path):
    need(cc)
    root = Path(data_dir("kernels"))
    srcs = [str(root / "ref" / k) for k in KERNELS]
    r = subprocess.run([cc, *flags, "-O2", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        f"-I{root / 'include'}", "-c", *srcs], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
