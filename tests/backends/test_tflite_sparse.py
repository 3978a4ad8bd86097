"""write_tflite(g, sparse=True): pruned FULLY_CONNECTED weights in TFLite's sparse format where LiteRT's
kernels run it (float32 CSR / 1x4, int8 1x16), dense everywhere else; LiteRT (reference kernels and
the default resolver with XNNPACK) gives the dense file's outputs, the file is smaller, and the
importer reads back the same dense graph. Facts behind the choices: backends/tflite/writer.py."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgec.backends.tflite import write_tflite
from edgec.backends.tflite.writer import SPARSE_FC_VERSION, sparse_layouts
from edgec.calibrate import observe
from edgec.cli import main
from edgec.data import dataset_from
from edgec.frontend.sparsity import sparsity_block
from edgec.frontend.tflite import import_tflite
from edgec.ir import structurally_equal
from edgec.ir.interpret import run_batch
from edgec.passes import Pipeline, Step
from edgec.run.litert import make_interpreter, run_litert
from edgec.tflite_schema import BUILTIN_NAMES, schema
from graphs import Builder
from opcheck import random_inputs


def prune(g, granularity="weight", sparsity=0.9):
    opts = {"sparsity": "auto" if granularity.startswith("nm:") else sparsity, "granularity": granularity,
            "schedule": "oneshot", "epochs": 0}
    return Pipeline([Step("prune_weights", opts)]).run(g)[0]


def quantize(g, dtype="int8", **opts):
    rng = np.random.default_rng(0)
    calib = dataset_from({"x": rng.standard_normal((64,) + g.tensors[g.inputs[0]].shape[1:]).astype(np.float32)})
    return Pipeline([Step("quantize", {"dtype": dtype, **opts})]).run(
        g, calibration=calib, observe=lambda h: observe(h, calib.xs))[0]


def fc_model(k=64, units=32, hidden=None, act="NONE", seed=0):
    """x[1, k] -> FC(units) [-> FC(hidden), left unpruned]."""
    b = Builder(seed)
    y = b.fc(b.input((1, k)), units, act=act, name="fc")
    if hidden:
        y = b.fc(y, hidden, name="head")
    return b.output(y)


def sparse_tensors(model: bytes) -> dict:
    """name -> (block or None, buffer bytes) of every sparse tensor in the file."""
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    return {t.name.decode(): (sparsity_block(t.sparsity, len(t.shape)), len(m.buffers[t.buffer].data))
            for t in m.subgraphs[0].tensors if t.sparsity is not None}


def fc_versions(model: bytes) -> list[int]:
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    return [m.operatorCodes[o.opcodeIndex].version for o in m.subgraphs[0].operators
            if BUILTIN_NAMES[m.operatorCodes[o.opcodeIndex].builtinCode] == "FULLY_CONNECTED"]


def delegated(model: bytes) -> bool:
    return any(d["op_name"] == "DELEGATE" for d in make_interpreter(model, reference=False)._get_ops_details())


# (dtype, quantize options, granularity, layout written): float32 keeps CSR or 1x4 blocks (the only
# layouts LiteRT's optimized float kernel runs; 4x4 blocks are stored as 1x4), int8 1x16 blocks.
CASES = [("float32", None, "weight", None), ("float32", None, "block:1x4", (1, 4)),
         ("float32", None, "block:4x4", (1, 4)), ("int8", {}, "block:1x16", (1, 16)),
         ("int8", {"per_channel": False}, "block:1x16", (1, 16)), ("int8", {}, "block:4x16", (1, 16))]


@pytest.mark.parametrize("dtype,qopts,granularity,layout", CASES, ids=lambda v: str(v))
def test_pruned_fc_written_sparse_runs_in_litert_like_dense(dtype, qopts, granularity, layout):
    g = prune(fc_model(act="RELU"), granularity)
    if dtype != "float32":
        g = quantize(g, **qopts)
    (w,) = [op.inputs[1] for op in g.ops if op.type == "FULLY_CONNECTED"]
    dense, sparse = write_tflite(g), write_tflite(g, sparse=True)

    # the file holds the weight in the kernel's layout, smaller, on FULLY_CONNECTED version 8
    assert sparse_tensors(dense) == {}
    (blk, stored), = sparse_tensors(sparse).values()
    assert blk == layout and stored < g.tensors[w].data.nbytes / 2
    assert len(sparse) < len(dense) - g.tensors[w].data.nbytes / 2
    assert fc_versions(sparse) == [SPARSE_FC_VERSION] and fc_versions(dense) == [1]

    xs = random_inputs(g, 16)
    want = run_batch(g, xs)[0]
    ref_dense, ref_sparse = run_litert(dense, xs)[0], run_litert(sparse, xs)[0]
    opt_dense, opt_sparse = run_litert(dense, xs, reference=False)[0], run_litert(sparse, xs, reference=False)[0]
    assert not delegated(sparse)     # XNNPACK leaves version 8 to the builtin sparse kernels
    if dtype == "float32":
        # the reference kernel densifies: bit-identical; the sparse loops sum in another order
        np.testing.assert_array_equal(ref_sparse, ref_dense)
        np.testing.assert_allclose(opt_sparse, opt_dense, rtol=1e-5, atol=1e-6)
    else:
        # the 1x16 kernel requantizes in fixed point: bit-exact with the reference interpreter (TFLM's
        # numerics); LiteRT's dense reference kernel rescales in double (1 LSB on a few values)
        np.testing.assert_array_equal(ref_sparse, want)
        np.testing.assert_array_equal(opt_sparse, want)
        assert np.abs(ref_sparse.astype(int) - ref_dense).max() <= 1

    # edgec's importer reads back the dense graph
    back = import_tflite(sparse)
    assert structurally_equal(g, back) is None
    assert structurally_equal(import_tflite(dense), back) is None
    np.testing.assert_array_equal(run_batch(back, xs)[0], want)


def test_only_the_pruned_weight_goes_sparse_and_dense_layers_stay_with_xnnpack():
    g = fc_model(hidden=16)
    g.tensors["fc_w"].data[np.random.default_rng(0).random((32, 64)) < 0.9] = 0
    sparse = write_tflite(g, sparse=True)
    assert set(sparse_tensors(sparse)) == {"fc_w"}
    assert fc_versions(sparse) == [SPARSE_FC_VERSION, 1]
    assert delegated(sparse)         # the dense head still goes to XNNPACK
    xs = random_inputs(g, 8)
    np.testing.assert_allclose(run_litert(sparse, xs, reference=False)[0], run_batch(g, xs)[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(run_litert(sparse, xs)[0], run_litert(write_tflite(g), xs)[0])


def _conv_dw_bmm(seed=0):
    b = Builder(seed)
    y = b.conv(b.input((1, 4, 4, 8)), 16, name="conv")
    dw = b.rand("dw_w", (1, 3, 3, 16))
    y = b.op("DEPTHWISE_CONV_2D", [y, dw, b.rand("dw_b", (16,), 0.1)], (1, 4, 4, 16), "dw", padding="SAME",
             stride_h=1, stride_w=1, depth_multiplier=1)
    y = b.reshape(y, (1, 4, 64))
    y = b.op("BATCH_MATMUL", [y, b.rand("bmm_w", (64, 32))], (1, 4, 32), "bmm")
    return b.output(y)


@pytest.mark.parametrize("case", ["conv-dw-bmm float32", "conv-dw-bmm int8", "fc int16x8", "fc int8 unstructured",
                                  "fc int8 K=40", "fc float32 at 10%", "fc int8 2:4"])
def test_kernels_without_sparse_support_keep_dense_weights(case):
    """CONV_2D, DEPTHWISE_CONV_2D, BATCH_MATMUL and int16x8 FULLY_CONNECTED read a sparse buffer as
    dense (measured: garbage); int8 FULLY_CONNECTED runs 1x16 blocks only, which unstructured or
    2:4 zeros hardly empty, and K=40 does not tile; 10% zeros do not pay for the indices."""
    g = {"conv-dw-bmm float32": lambda: prune(_conv_dw_bmm()),
         "conv-dw-bmm int8": lambda: quantize(prune(_conv_dw_bmm(), "block:1x16")),
         "fc int16x8": lambda: quantize(prune(fc_model(), "block:1x16"), "int16x8"),
         "fc int8 unstructured": lambda: quantize(prune(fc_model())),
         "fc int8 K=40": lambda: quantize(prune(fc_model(k=40), "block:1x8")),
         "fc float32 at 10%": lambda: prune(fc_model(), sparsity=0.1),
         "fc int8 2:4": lambda: quantize(prune(fc_model(), "nm:2:4"))}[case]()
    zeros = max((t.data == 0).mean() for t in g.tensors.values() if t.is_const and t.data.ndim >= 2)
    assert zeros >= 0.1     # pruned
    assert sparse_layouts(g, sparse=True) == {}
    assert write_tflite(g, sparse=True) == write_tflite(g)


def test_imported_sparsity_is_only_kept_where_a_kernel_runs_it():
    """meta["tflite_sparsity"] from an imported model: on a conv weight (no sparse kernel) the weight
    goes dense; on a float FULLY_CONNECTED a block the optimized kernel refuses becomes 1x4."""
    g = _conv_dw_bmm()
    g.tensors["conv_w"].meta["tflite_sparsity"] = True
    assert sparse_tensors(write_tflite(g)) == {}
    f = fc_model()
    f.tensors["fc_w"].data.reshape(32, 4, 16)[np.random.default_rng(0).random((32, 4)) < 0.7] = 0
    for asked, written in ((True, None), ((1, 4), (1, 4)), ((1, 16), (1, 4)), ((2, 16), (1, 4))):
        f.tensors["fc_w"].meta["tflite_sparsity"] = asked
        model = write_tflite(f)
        assert {k: v[0] for k, v in sparse_tensors(model).items()} == {"fc_w": written}
        xs = random_inputs(f, 4)
        np.testing.assert_allclose(run_litert(model, xs, reference=False)[0], run_batch(f, xs)[0],
                                   rtol=1e-5, atol=1e-5)


def test_tflite_micro_runner_refuses_sparse_weights():
    """TFLite Micro would load a sparse file without complaint and read the compressed buffer as dense
    weights (measured: garbage, sometimes a crash), so edgec's TFLM runner refuses it in one line."""
    from edgec.errors import EdgecError
    from edgec.run.tflm import run_tflm
    g = prune(fc_model())
    assert sparse_tensors(write_tflite(g)) == {}           # the default stays dense, for TFLM
    with pytest.raises(EdgecError, match="TFLite Micro"):
        run_tflm(write_tflite(g, sparse=True), random_inputs(g, 1))


@pytest.fixture(scope="module")
def fc_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("sparse_cli")
    (d / "m.tflite").write_bytes(write_tflite(fc_model(k=64, units=32)))
    rng = np.random.default_rng(2)
    np.savez(d / "d.npz", x=rng.standard_normal((48, 64)).astype(np.float32), y=rng.integers(0, 32, 48))
    return d


@pytest.mark.parametrize("quant", [[], ["--quantize", "int8", "--calibration", "D"]], ids=["float32", "int8"])
def test_cli_tflite_sparse(fc_files, capsys, quant):
    d = str(fc_files / "d.npz")
    base = ["compile", str(fc_files / "m.tflite"), "--eval-data", d, "--prune", "0.9", "--prune-granularity",
            "block:1x16", "--prune-schedule", "oneshot", "--epochs", "0", "--json"]
    base += [d if a == "D" else a for a in quant]
    reports, models = {}, {}
    for flag in ([], ["--tflite-sparse"]):
        out = fc_files / f"out{len(quant)}{len(flag)}"
        assert main(base + ["-o", str(out)] + flag) == 0, capsys.readouterr().err
        reports[bool(flag)] = json.loads(capsys.readouterr().out)
        models[bool(flag)] = (out / "model.tflite").read_bytes()
    dense, sparse = reports[False]["totals"], reports[True]["totals"]
    assert sparse_tensors(models[False]) == {}
    ((blk, stored),) = sparse_tensors(models[True]).values()
    assert blk == ((1, 16) if quant else (1, 4)) and 0 < stored < 2048
    assert sparse["tflite_bytes"] == len(models[True]) < dense["tflite_bytes"] * 0.5
    assert sparse["weight_bytes"] < dense["weight_bytes"] * 0.5
    # evaluated in LiteRT from the sparse file itself, with the dense file's results (int8: LiteRT's
    # dense reference kernel is 1 LSB off on a few values, the sparse one is not)
    ev_dense, ev_sparse = reports[False]["evaluation"], reports[True]["evaluation"]
    assert ev_sparse["runtime"] == "LiteRT reference kernels"
    for key, tol in (("accuracy", 1 / 48), ("top1_agreement", 1 / 48), ("output_rmse", 1e-3 * ev_dense["output_rmse"])):
        assert ev_sparse[key] == pytest.approx(ev_dense[key], abs=tol if quant else 1e-6)
    assert structurally_equal(import_tflite(models[False]), import_tflite(models[True])) is None
