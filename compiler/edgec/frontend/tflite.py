"""Import a .tflite flatbuffer into the IR. Every frontend ends here (Keras and SavedModel are first
lowered to a float .tflite by TensorFlow's converter), so this is the one place that reads models."""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op, QuantParams, Tensor, VerifyError, verify
from ..ir import ops as opreg
from ..tflite_schema import BUILTIN_NAMES, TENSOR_TYPES, TYPE_TO_DTYPE, options_to_attrs, schema


def load_tflite(path: str) -> Graph:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise EdgecError(f"cannot read {path}: {e.strerror}") from None
    return import_tflite(data, name=path)


def import_tflite(data: bytes, name: str = "model") -> Graph:
    if len(data) < 8:
        raise EdgecError(f"{name}: not a TFLite model ({len(data)} bytes)")
    if data[4:8] != b"TFL3":
        raise EdgecError(f"{name}: not a TFLite model (no TFL3 identifier)")
    try:
        model = schema.ModelT.InitFromPackedBuf(bytearray(data), 0)
    except Exception as e:  # the generated parser raises anything on corrupt offsets
        raise EdgecError(f"{name}: corrupt TFLite flatbuffer ({type(e).__name__})") from None
    try:
        g = _to_graph(model, name)
    except EdgecError:
        raise
    except Exception as e:
        raise EdgecError(f"{name}: corrupt or inconsistent TFLite model ({type(e).__name__}: {e})") from None
    try:
        return verify(g)
    except VerifyError as e:
        raise EdgecError(f"{name}: inconsistent TFLite model: {str(e).split(': ', 1)[-1]}") from None


def _to_graph(model, name: str) -> Graph:
    if not model.subgraphs:
        raise EdgecError(f"{name}: the model has no subgraph")
    sg = model.subgraphs[0]
    buffers = model.buffers or []
    g = Graph(name=name.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    tensors = sg.tensors or []
    names: list[str] = []
    for i, t in enumerate(tensors):
        tname = (t.name.decode() if isinstance(t.name, bytes) else t.name) or f"tensor_{i}"
        tname = g.unique_name(tname)
        names.append(tname)
        int4 = t.type == schema.TensorType.INT4
        if t.type not in TYPE_TO_DTYPE and not int4:
            raise EdgecError(f"{name}: tensor {tname!r} has type {TENSOR_TYPES.get(t.type, t.type)}, "
                             f"which edgec does not support")
        dtype = "int8" if int4 else TYPE_TO_DTYPE[t.type]
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
        if any(d < 0 for d in shape):
            sig = t.shapeSignature
            raise EdgecError(f"{name}: tensor {tname!r} has a dynamic shape {list(sig) if sig is not None else shape}")
        data = None
        if t.sparsity is not None:
            from .sparsity import decode_sparse
            raw = _buffer(buffers, t.buffer, tname, name)
            data = decode_sparse(raw, dtype, shape, t.sparsity, tname)
        elif t.buffer and t.buffer < len(buffers) and buffers[t.buffer].data is not None \
                and len(buffers[t.buffer].data):
            raw = _buffer(buffers, t.buffer, tname, name)
            if int4:   # two nibbles a byte, low first: unpack into the int8 container (bits=4)
                n = int(np.prod(shape, dtype=np.int64))
                if len(raw) != (n + 1) // 2:
                    raise EdgecError(f"{name}: INT4 tensor {tname!r} holds {len(raw)} bytes, {list(shape)} needs {(n + 1) // 2}")
                nib = np.frombuffer(raw, np.uint8)
                vals = np.stack([nib & 0xF, nib >> 4], axis=1).reshape(-1)[:n].astype(np.int8)
                raw = np.where(vals > 7, vals - 16, vals).astype(np.int8).tobytes()
            expect = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
            if len(raw) != expect:
                raise EdgecError(f"{name}: tensor {tname!r} holds {len(raw)} bytes, its shape "
                                 f"{list(shape)} needs {expect}")
            data = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype).reshape(shape)
        q = _quant(t.quantization, shape)
        if q is not None:   # stored width: 4 for INT4, else the dtype's (int32 biases are 32-bit)
            q.bits = 4 if int4 else np.dtype(dtype).itemsize * 8
        g.add_tensor(Tensor(tname, shape, dtype, data, q))
        if t.sparsity is not None:  # re-written sparse, keeping a block layout if it had one
            from .sparsity import sparsity_block
            g.tensors[tname].meta["tflite_sparsity"] = sparsity_block(t.sparsity, len(shape)) or True

    codes = model.operatorCodes or []
    for k, o in enumerate(sg.operators or []):
        if o.opcodeIndex >= len(codes):
            raise EdgecError(f"{name}: operator {k} names opcode {o.opcodeIndex}, the model has {len(codes)}")
        code = codes[o.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        opname = BUILTIN_NAMES.get(builtin, f"builtin#{builtin}")
        outs = [names[i] for i in (o.outputs if o.outputs is not None else [])]
        where = f"operator {k} (output {outs[0]!r})" if outs else f"operator {k}"
        if opname == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            raise EdgecError(f"{name}: unsupported custom op {custom!r} at {where}; "
                             f"supported: {', '.join(opreg.supported())}")
        if opname not in opreg.REGISTRY:
            raise EdgecError(f"{name}: unsupported op {opname} at {where}; "
                             f"supported: {', '.join(opreg.supported())}")
        ins = [names[i] if i >= 0 else None for i in (o.inputs if o.inputs is not None else [])]
        attrs = options_to_attrs(o.builtinOptions) if o.builtinOptions is not None else {}
        g.ops.append(Op(opname, ins, outs, attrs))
    g.inputs = [names[i] for i in sg.inputs]
    g.outputs = [names[i] for i in sg.outputs]
    _name_ops(g)
    return g


def _name_ops(g: Graph) -> None:
    """Readable, unique op names from TensorFlow's fused tensor names: the first of the names fused
    with ';' ("model_1/conv1/BiasAdd;model_1/bn1/..." -> "conv1/BiasAdd"), less the path prefix
    every op shares (the model's scope)."""
    raw = [op.outputs[0].split(";")[0] if op.outputs else op.type for op in g.ops]
    parts = [r.split("/") for r in raw]
    scoped = [p for p in parts if len(p) > 1]   # "Identity"-like output names have no scope
    common = 0
    if len(scoped) > 1:
        while all(len(p) > common + 1 and p[common] == scoped[0][common] for p in scoped):
            common += 1
    seen: dict[str, int] = {}
    for op, p in zip(g.ops, parts):
        name = "/".join(p[common:] if len(p) > common else p) or op.type.lower()
        if name in seen:
            seen[name] += 1
            name = f"{name}_{seen[name]}"
        else:
            seen[name] = 0
        op.name = name


def _buffer(buffers, index: int, tname: str, name: str) -> bytes:
    if index >= len(buffers):
        raise EdgecError(f"{name}: tensor {tname!r} names buffer {index}, the model has {len(buffers)}")
    b = buffers[index].data
    return b"" if b is None else np.asarray(b, np.uint8).tobytes()


def _quant(q, shape) -> QuantParams | None:
    if q is None or q.scale is None or len(q.scale) == 0:
        return None
    zp = q.zeroPoint if q.zeroPoint is not None and len(q.zeroPoint) else np.zeros(len(q.scale), np.int64)
    axis = int(q.quantizedDimension) if len(q.scale) > 1 else None
    if axis is not None and (axis >= len(shape) or shape[axis] != len(q.scale)):
        raise EdgecError(f"per-channel quantization of {len(q.scale)} scales does not fit shape {list(shape)}")
    return QuantParams(np.asarray(q.scale, np.float32), np.asarray(zp, np.int64), axis)
