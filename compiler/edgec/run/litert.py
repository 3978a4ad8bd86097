"""Run a .tflite in LiteRT (ai-edge-litert; tflite_runtime where only that is installed)."""
from __future__ import annotations

import numpy as np

from ..native_output import captured_native_output


def _interpreter_module():
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        from tflite_runtime import interpreter  # type: ignore
    return interpreter


def make_interpreter(model: bytes, reference: bool = True, keep_all: bool = False):
    """`reference` selects the builtin reference kernels (TFLite's numerics oracle); otherwise the
    default resolver with XNNPACK, which may round int8 differently by 1 LSB."""
    mod = _interpreter_module()
    kw = {}
    if reference:
        kw["experimental_op_resolver_type"] = mod.OpResolverType.BUILTIN_REF
    with captured_native_output():  # "Created TensorFlow Lite XNNPACK delegate" and the like
        it = mod.Interpreter(model_content=model, experimental_preserve_all_tensors=keep_all, **kw)
        it.allocate_tensors()
    return it


def run_litert(model: bytes, inputs: list[np.ndarray], reference: bool = True) -> list[np.ndarray]:
    """One batch-1 inference per sample: inputs[i] has shape [N, *input_i_shape[1:]]."""
    it = make_interpreter(model, reference)
    ins, outs = it.get_input_details(), it.get_output_details()
    n = len(inputs[0])
    results = [[] for _ in outs]
    for s in range(n):
        for d, x in zip(ins, inputs):
            it.set_tensor(d["index"], np.asarray(x[s:s + 1], d["dtype"]).reshape(d["shape"]))
        it.invoke()
        for r, d in zip(results, outs):
            r.append(it.get_tensor(d["index"]).copy())
    return [np.concatenate(r) for r in results]
