"""Write the IR as a TFLite flatbuffer with the schema's object API.

Constant data goes in 16-byte aligned buffers (what TFLite's own converter does), so kernels may
read int32 biases and int16 weights in place, also on cores without unaligned access.
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


def write_tflite(g: Graph, description: str = "edgec") -> bytes:
    m = schema.ModelT()
    m.version = 3
    m.description = description
    m.buffers = [schema.BufferT()]          # buffer 0 is the empty sentinel
    m.operatorCodes = []
    code_index: dict[str, int] = {}

    sg = schema.SubGraphT()
    sg.name = "main"
    sg.tensors = []
    index: dict[str, int] = {}
    int4 = _int4_weights(g)
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
            if t.meta.get("tflite_sparsity"):  # True, or a block size per dim
                from ...frontend.sparsity import encode_sparse
                blk = t.meta["tflite_sparsity"]
                b.data, tt.sparsity = encode_sparse(t.data, blk if isinstance(blk, (tuple, list)) else None)
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
        if op.type not in code_index:
            oc = schema.OperatorCodeT()
            code = BUILTIN_CODES[op.type]
            oc.builtinCode = code
            oc.deprecatedBuiltinCode = min(code, 127)  # the int8 field saturates at PLACEHOLDER
            oc.version = 1
            code_index[op.type] = len(m.operatorCodes)
            m.operatorCodes.append(oc)
        o = schema.OperatorT()
        o.opcodeIndex = code_index[op.type]
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
