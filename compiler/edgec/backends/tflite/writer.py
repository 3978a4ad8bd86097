"""Write the IR as a TFLite flatbuffer with the schema's object API.

Constant data goes in 16-byte aligned buffers (what TFLite's own converter does), so kernels may
read int32 biases and int16 weights in place, also on cores without unaligned access.

Sparse weights (`write_tflite(g, sparse=True)`): a constant is stored in TFLite's sparse format
(frontend/sparsity.py's encode_sparse, the layout TensorFlow's converter writes) only where the
kernel that reads it runs that format, and only when that is clearly smaller (MIN_SAVING). What
runs, measured with ai-edge-litert 2.3 and tflite-micro 2026-10 (pruned weights, random inputs,
every runtime in its own process because misread buffers can crash it):

  FULLY_CONNECTED, float32 in/weights/out: CSR (rows DENSE, columns SPARSE_CSR) and 1x4 blocks, in
    the reference kernel (it densifies on every invoke: outputs bit-identical to the dense file's)
    and in the optimized builtin kernel (sparse loops: another summation order, within 1e-6 relative
    of dense). Other blocks run only in the reference kernel; the optimized one fails to invoke
    ("Unsupported sparse fully-connected weight format"), so they are written as 1x4 or CSR.
  FULLY_CONNECTED, int8 in/weights/out, symmetric weights (per-tensor or per-channel): 1x16 blocks
    only; the reference and optimized resolvers run the same FullyConnectedSparseWeight1x16 kernel,
    whose fixed-point requantization is bit-exact with edgec's reference interpreter (and TFLite
    Micro's numerics), where LiteRT's dense int8 reference kernel rescales in double and differs by
    1 LSB on ~0.5% of values. CSR and other blocks fail to invoke.
  FULLY_CONNECTED int16x8, CONV_2D, DEPTHWISE_CONV_2D, BATCH_MATMUL (float32 and int8): no kernel
    looks at the sparsity; each reads the compressed buffer as if dense and silently computes
    garbage (NaN, or off by up to 255 LSB). Kept dense.
  XNNPACK (the default delegate) leaves FULLY_CONNECTED nodes of opcode version 8, the version that
    marks sparse weights, to the builtin kernels above; at any other version it takes the node and
    reads the compressed buffer as dense (NaN). So a sparse FULLY_CONNECTED is written at version 8,
    as TensorFlow's converter does; dense ones keep version 1 and stay with XNNPACK.
  TFLite Micro has neither sparse support nor a check: every sparse weight above gives wrong outputs
    (and it has no DENSIFY kernel). A .tflite meant for TFLite Micro must stay dense: sparse=False,
    the default.

A tensor imported sparse keeps meta["tflite_sparsity"] (True or a block size per dim) and is
written sparse again: as it was when only DENSIFY reads it (DENSIFY decodes any layout), in a layout
the kernel runs when an op reads it directly (its own block if supported, else the smallest), and
dense if none runs. The importer decodes every layout written here back to the same dense values.
"""
from __future__ import annotations

import flatbuffers
import numpy as np

from ...ir import Graph
from ...ir import ops as opreg
from ...tflite_schema import BUILTIN_CODES, DTYPE_TO_TYPE, OPTIONS_CODES, attrs_to_options, schema

ALIGN = 16

# Ops whose INT4 weight tensors both LiteRT and TFLite Micro run with int8 activations (measured with
# ai-edge-litert 2.3 and tflite-micro 2026-10: FULLY_CONNECTED runs INT4 in LiteRT but TFLM refuses INT4
# filters, and TFLM's int16x8 CONV_2D refuses them too; those keep int8 storage of their 4-bit values).
INT4_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D"}

# FULLY_CONNECTED's opcode version for sparse weights (TFLite's op versioning; XNNPACK leaves it to
# the builtin kernels). Every other op is written at version 1.
SPARSE_FC_VERSION = 8

# A weight goes sparse only when that saves at least this fraction of its bytes: the sparse kernels
# give up XNNPACK's dense SIMD kernels. Measured on x86 (ai-edge-litert 2.3, default resolver, 1024x1024
# FC, batch 1, median): float32 90% CSR 94 us vs 45 us dense, 1x4 blocks 25 us; int8 90% 1x16 blocks
# 24 us vs 14 us, but int8 90% unstructured in 1x16 blocks (87% of the dense bytes) 162 us.
MIN_SAVING = 0.25


def pack_int4(values: np.ndarray) -> bytes:
    """TFLite's INT4 layout: two's-complement nibbles, element 0 in the low nibble."""
    flat = values.reshape(-1).astype(np.int16) & 0xF
    if flat.size % 2:
        flat = np.append(flat, 0)
    return (flat[0::2] | (flat[1::2] << 4)).astype(np.uint8).tobytes()


def _int4_weights(g: Graph) -> set[str]:
    readers: dict[str, set[str]] = {}
    for op in g.ops:
        acts = {g.tensors[i].dtype for i in op.inputs if i is not None and not g.tensors[i].is_const}
        kind = op.type if acts == {"int8"} else f"{op.type}:{'/'.join(sorted(acts))}"
        for i in op.inputs:
            if i is not None:
                readers.setdefault(i, set()).add(kind)
    return {n for n, t in g.tensors.items() if t.is_const and t.dtype == "int8" and t.quant is not None
            and t.quant.bits == 4 and t.quant.scheme == "uniform" and "group_mult" not in t.meta
            and readers.get(n) and readers[n] <= INT4_OPS
            and int(t.data.min(initial=0)) >= -8 and int(t.data.max(initial=0)) <= 7}


def _kernel_blocks(g: Graph, t, uses) -> list:
    """The sparse layouts (block size per dim, None = CSR) the kernels reading `t` all run: see the
    module docstring. Empty when some reader would misread a sparse buffer."""
    if t.data.ndim != 2 or any(op.type != "FULLY_CONNECTED" or k != 1 for op, k in uses):
        return []
    k_dim = t.shape[1]
    ends = {(g.tensors[op.inputs[0]].dtype, g.tensors[op.outputs[0]].dtype) for op, _ in uses}
    if t.dtype == "float32" and ends == {("float32", "float32")}:
        return [None] + ([(1, 4)] if k_dim % 4 == 0 else [])
    symmetric = t.quant is not None and t.quant.axis in (None, 0) and not np.any(np.asarray(t.quant.zero_point))
    if t.dtype == "int8" and symmetric and ends == {("int8", "int8")} and k_dim % 16 == 0:
        return [(1, 16)]
    return []


def _encoded_bytes(data: np.ndarray, block) -> int:
    """Bytes of the sparse encoding: the values kept and the index arrays."""
    from ...frontend.sparsity import encode_sparse
    raw, sp = encode_sparse(data, block)
    return len(raw) + sum(np.asarray(v.values).nbytes for dm in sp.dimMetadata
                          for v in (dm.arraySegments, dm.arrayIndices) if v is not None)


def sparse_layouts(g: Graph, sparse: bool = False) -> dict[str, tuple | None]:
    """Constants to write in TFLite's sparse format, with their block size per dim (None: CSR).
    With `sparse`, every constant a kernel runs sparse (the smallest such layout, when that saves
    MIN_SAVING of the dense bytes); without, only those marked meta["tflite_sparsity"] by the importer."""
    uses: dict[str, list] = {}
    for op in g.ops:
        for k, name in enumerate(op.inputs):
            if name is not None:
                uses.setdefault(name, []).append((op, k))
    out: dict[str, tuple | None] = {}
    for name, readers in uses.items():
        t = g.tensors[name]
        asked = t.meta.get("tflite_sparsity")
        if not t.is_const or t.data.ndim == 0 or not (sparse or asked):
            continue
        own = tuple(asked) if isinstance(asked, (tuple, list)) else None
        if asked and all(op.type == "DENSIFY" for op, _ in readers):
            out[name] = own
            continue
        blocks = _kernel_blocks(g, t, readers)
        if asked and own in blocks:
            out[name] = own
        elif blocks:
            size, best = min((_encoded_bytes(t.data, b), k) for k, b in enumerate(blocks))
            if size <= (1 - MIN_SAVING) * t.data.nbytes:
                out[name] = blocks[best]
    return out


def stored_weight_bytes(g: Graph, sparse: bool = False) -> dict[str, int]:
    """Per op, the bytes of its constant operands as the file written with `sparse` stores them (the
    report's weight_bytes; integer operands such as shapes are not weights)."""
    layouts = sparse_layouts(g, sparse)
    out = {}
    for op in g.ops:
        skip = opreg.get(op.type).int_operands
        out[op.name] = sum(_encoded_bytes(g.tensors[n].data, layouts[n]) if n in layouts else g.tensors[n].nbytes
                           for k, n in enumerate(op.inputs)
                           if n is not None and g.tensors[n].is_const and k not in skip)
    return out


class _AlignedBufferT(schema.BufferT):
    def Pack(self, builder):
        data = None
        if self.data is not None:
            raw = self.data
            builder.StartVector(1, len(raw), ALIGN)
            builder.head = builder.head - len(raw)
            builder.Bytes[builder.head:builder.head + len(raw)] = raw
            builder.vectorNumElems = len(raw)
            data = builder.EndVector()
        schema.BufferStart(builder)
        if data is not None:
            schema.BufferAddData(builder, data)
        return schema.BufferEnd(builder)


def write_tflite(g: Graph, description: str = "edgec", sparse: bool = False) -> bytes:
    """The flatbuffer of `g`. `sparse`: store weights in TFLite's sparse format where LiteRT's kernel
    runs it and it is smaller (module docstring); keep the default, dense, for TFLite Micro."""
    m = schema.ModelT()
    m.version = 3
    m.description = description
    m.buffers = [schema.BufferT()]          # buffer 0 is the empty sentinel
    m.operatorCodes = []
    code_index: dict[tuple[str, int], int] = {}

    sg = schema.SubGraphT()
    sg.name = "main"
    sg.tensors = []
    index: dict[str, int] = {}
    int4 = _int4_weights(g)
    layouts = sparse_layouts(g, sparse)
    used = list(dict.fromkeys(list(g.inputs) + [n for op in g.ops for n in op.inputs + op.outputs
                                                if n is not None] + list(g.outputs)))
    for name in used:
        t = g.tensors[name]
        tt = schema.TensorT()
        tt.name = name
        tt.shape = np.array(t.shape, np.int32)
        tt.type = schema.TensorType.INT4 if name in int4 else DTYPE_TO_TYPE[t.dtype]
        tt.buffer = 0
        if t.is_const:
            b = _AlignedBufferT()
            b.data = pack_int4(t.data) if name in int4 else \
                np.ascontiguousarray(t.data, dtype=np.dtype(t.dtype).newbyteorder("<")).tobytes()
            if name in layouts:
                from ...frontend.sparsity import encode_sparse
                b.data, tt.sparsity = encode_sparse(t.data, layouts[name])
            tt.buffer = len(m.buffers)
            m.buffers.append(b)
        if t.quant is not None:
            q = schema.QuantizationParametersT()
            q.scale = np.asarray(t.quant.scale, np.float32)
            q.zeroPoint = np.asarray(t.quant.zero_point, np.int64)
            q.quantizedDimension = t.quant.axis or 0
            tt.quantization = q
        index[name] = len(sg.tensors)
        sg.tensors.append(tt)

    sg.operators = []
    for op in g.ops:
        version = SPARSE_FC_VERSION if op.type == "FULLY_CONNECTED" and op.inputs[1] in layouts else 1
        if (op.type, version) not in code_index:
            oc = schema.OperatorCodeT()
            code = BUILTIN_CODES[op.type]
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)  # the int8 field saturates at PLACEHOLDER
            oc.version = version
            code_index[(op.type, version)] = len(m.operatorCodes)
            m.operatorCodes.append(oc)
        o = schema.OperatorT()
        o.opcodeIndex = code_index[(op.type, version)]
        o.inputs = np.array([index[i] if i is not None else -1 for i in op.inputs], np.int32)
        o.outputs = np.array([index[n] for n in op.outputs], np.int32)
        options = opreg.get(op.type).options
        if options is not None:
            o.builtinOptionsType = OPTIONS_CODES[options]
            attrs = op.attrs
            if op.type == "DEPTHWISE_CONV_2D":   # TFLM loops over it: write the one the shapes imply
                attrs = {**attrs, "depth_multiplier": g.tensors[op.inputs[1]].shape[3] // g.tensors[op.inputs[0]].shape[3]}
            o.builtinOptions = attrs_to_options(options, attrs)
        sg.operators.append(o)
    sg.inputs = np.array([index[n] for n in g.inputs], np.int32)
    sg.outputs = np.array([index[n] for n in g.outputs], np.int32)
    m.subgraphs = [sg]

    size = sum(len(b.data) + ALIGN for b in m.buffers if b.data is not None) + 4096 + 256 * len(used)
    builder = flatbuffers.Builder(size)
    builder.Finish(m.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())
