"""Hashed FULLY_CONNECTED weights for the C backend (kernels/ref/ec_fully_connected_s8h.c, ec_hash.h).

A weight hashed by the share_weights pass (HashedNets) is, after quantization, an int8 weight whose every
element is sign(o, i) * bucket[h(o, i)] (edgec.weight_hashing). The pass leaves the hash spec on the op's
output tensor (meta["weight_hash"]: the quantize pass replaces weight tensors). Here the buckets are
recovered from the int8 weight and checked -- every element must equal its sign times its bucket -- and only
then stored: B int8 buckets instead of O * I weights, the kernel computing the hash per weight. A weight
that is not exactly hashed (e.g. quantized per channel after hashing) is left to the dense / sparse paths.
"""
from __future__ import annotations

import numpy as np

from ...ir import Tensor
from ...weight_hashing import HashSpec, salt_of

KERNEL = "ec_fully_connected_s8h"
LEVEL_CODES = {"tensor": 0, "row": 1, "block": 2}


def hashed_buckets(ot: Tensor, wt: Tensor) -> tuple[HashSpec, np.ndarray] | None:
    """(spec, int8 buckets) of the int8 weight `wt` of the op producing `ot` when it is exactly hashed as the
    spec on `ot` says, else None."""
    spec = ot.meta.get("weight_hash")
    if spec is None or wt.dtype != "int8" or wt.quant is None or wt.quant.scale.size != 1 or len(wt.shape) != 2 \
            or wt.quant.bits != 8 or wt.quant.scheme != "uniform" or wt.meta.get("group_mult") is not None:
        return None
    spec = HashSpec.from_dict(spec)
    try:
        spec.check(wt.shape)
    except Exception:
        return None
    b = spec.collect(wt.data)
    if b is None or np.abs(b).max(initial=0) > 127:
        return None
    return spec, b.astype(np.int8)


def fc_hashed_call(op, cx, it: Tensor, wt: Tensor, bt: Tensor | None, ot: Tensor):
    """The CCall of an int8 FULLY_CONNECTED with hashed weights, or None (not hashed, not int8)."""
    from ...ir.ops import CCall
    from ...ir.ops.conv import _scale, _zp, fc_multipliers
    from ...ir.quant import activation_range
    if it.dtype != "int8" or ot.dtype != "int8" or it.quant is None or ot.quant is None \
            or (bt is not None and bt.dtype != "int32") or int(np.asarray(wt.quant.zero_point).reshape(-1)[0]) != 0:
        return None
    found = hashed_buckets(ot, wt)
    if found is None:
        return None
    spec, buckets = found
    o, i = wt.shape
    mult, shift = fc_multipliers(it, wt, ot, o)
    lo, hi = activation_range(op.attrs["fused_activation_function"], ot.dtype, float(_scale(ot)), _zp(ot))
    fields = {"fc.batches": it.size // i, "fc.in_features": i, "fc.out_features": o, "fc.in_zp": _zp(it),
              "fc.out_zp": _zp(ot), "fc.act_min": lo, "fc.act_max": hi,
              "fc.mult": cx.array(op.name + "_mult", mult, "int32_t"),
              "fc.shift": cx.array(op.name + "_shift", shift, "int32_t"),
              "level": LEVEL_CODES[spec.level], "buckets": hash_range(spec, o),
              "block": spec.block, "salt": f"{salt_of(spec.seed)}u"}
    args = [cx.ptr(op.inputs[0]), cx.array(op.name + "_whash", buckets, "int8_t", weight=True),
            cx.ptr(op.inputs[2]) if len(op.inputs) > 2 else "NULL", cx.ptr(op.outputs[0]), cx.scratch_expr]
    return CCall(KERNEL, args, ("ec_fc_s8h_params_t", fields), scratch=0)


def hash_range(spec: HashSpec, rows: int) -> int:
    """The kernel's `buckets` field: all buckets (tensor), per row (row), in blocks (block)."""
    if spec.level == "row":
        return spec.buckets // rows
    if spec.level == "block":
        return spec.buckets // spec.block
    return spec.buckets
