"""build_model: a float IR graph as a differentiable TF function, and export back to IR."""
from __future__ import annotations

import numpy as np

from .. import quant_weights as qw
from ..errors import EdgecError
from ..ir import Graph
from ..ir import ops as opreg
from ..ir.ops import float_constant_inputs
from .constraints import ActQuant, RowView, WeightQuant


def _tf():
    import tensorflow as tf
    return tf


def trainable_constants(g: Graph) -> dict[str, list[tuple[str, int]]]:
    """float32 constants read by ops as float operands (weights, biases, alphas, added constants):
    name -> [(op type, input index)]."""
    out: dict[str, list[tuple[str, int]]] = {}
    for op in g.ops:
        for k, name in float_constant_inputs(g, op):
            out.setdefault(name, []).append((op.type, k))
    return out


class TrainableGraph:
    """A float IR graph whose float constants are tf.Variables, with per-tensor constraints.

    Call it on a list of batched inputs: `model(xs, training=False) -> [outputs]`. `variables` maps
    constant names to their tf.Variable; `constraints` maps tensor names to their built constraints.
    """

    def __init__(self, graph: Graph, constraints: dict | None = None):
        tf = _tf()
        for op in graph.ops:
            if opreg.get(op.type).tf is None:
                raise EdgecError(f"op {op.type} ({op.name}) has no TF lowering: the graph cannot be trained")
        for name in graph.inputs:
            if graph.tensors[name].dtype != "float32":
                raise EdgecError(f"training needs a float graph; input {name!r} is {graph.tensors[name].dtype}")
        self.graph = graph.copy()
        self.variables: dict = {}
        for name in trainable_constants(self.graph):
            self.variables[name] = tf.Variable(self.graph.tensors[name].data.astype(np.float32),
                                               name=_safe(name))
        self.specs: dict[str, list] = {}
        self.constraints: dict[str, list] = {}
        for name, spec in (constraints or {}).items():
            specs = list(spec) if isinstance(spec, (list, tuple)) else [spec]
            if name not in self.graph.tensors:
                raise EdgecError(f"constraint on unknown tensor {name!r}")
            t = self.graph.tensors[name]
            built = []
            for s in specs:
                if isinstance(s, ActQuant):
                    built.append(s.build(t.shape, _safe(name)))
                else:
                    if name not in self.variables:
                        raise EdgecError(f"weight constraint {type(s).__name__} on {name!r}, "
                                         f"which is not a trainable float constant")
                    built.append(s.build(t.data, _safe(name)))
            self.specs[name] = specs
            self.constraints[name] = built
        self._consts = {n: t.data for n, t in self.graph.tensors.items() if t.is_const}
        self._fn = None

    @property
    def trainable_variables(self) -> list:
        vs = [v for v in self.variables.values()]
        for cs in self.constraints.values():
            for c in cs:
                vs.extend(getattr(c, "variables", []))
        return vs

    def weight(self, name: str, training: bool = False):
        """The constrained value of a trainable constant."""
        w = self.variables[name]
        for c in self.constraints.get(name, []):
            w = c(w, training)
        return w

    def _act(self, name, x, training):
        for c in self.constraints.get(name, []):
            x = c(x, training)
        return x

    def forward(self, xs, training: bool = False, keep: bool = False):
        tf = _tf()
        g = self.graph
        env = {}
        for name, x in zip(g.inputs, xs):
            env[name] = self._act(name, tf.convert_to_tensor(x, tf.float32), training)
        wcache = {}
        for op in g.ops:
            d = opreg.get(op.type)
            ins = []
            for k, name in enumerate(op.inputs):
                if name is None:
                    ins.append(None)
                elif name in env:
                    ins.append(env[name])
                elif k in d.int_operands:
                    ins.append(np.asarray(self._consts[name]))
                elif name in self.variables:
                    if name not in wcache:
                        wcache[name] = self.weight(name, training)
                    ins.append(wcache[name])
                else:
                    ins.append(tf.constant(self._consts[name]))
            ys = d.tf(op, ins, op.attrs)
            for name, y in zip(op.outputs, ys):
                env[name] = self._act(name, y, training)
        if keep:
            return env
        return [env[o] if o in env else tf.constant(self._consts[o]) for o in g.outputs]

    def __call__(self, xs, training: bool = False):
        return self.forward(xs, training)

    def predict(self, xs, batch_size: int = 256) -> list[np.ndarray]:
        """Inference in batches (a compiled tf.function), as numpy."""
        tf = _tf()
        if self._fn is None:
            self._fn = tf.function(lambda *a: self.forward(list(a), False), reduce_retracing=True)
        n = len(xs[0])
        outs = [self._fn(*[np.asarray(x[i:i + batch_size], np.float32) for x in xs]) for i in range(0, n, batch_size)]
        return [np.concatenate([o[k].numpy() for o in outs]) for k in range(len(outs[0]))]


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in name) or "t"


def build_model(graph: Graph, constraints: dict | None = None) -> TrainableGraph:
    """The float IR graph as a TrainableGraph (see edgec.train's docstring for constraints)."""
    return TrainableGraph(graph, constraints)


def weight_layout(op_type: str, k: int, bits: int, scheme: str, per_channel: bool) -> int | None:
    """The per-channel axis the quantize pass uses for input k of op_type (None: per tensor):
    the registry's weight axis; FULLY_CONNECTED weights are per channel (axis 0) only when low-bit."""
    d = opreg.get(op_type)
    if not per_channel or k not in d.weights:
        return None
    axis = d.weights[k]
    if axis is None and op_type == "FULLY_CONNECTED" and k == 1 and (bits < 8 or scheme != "uniform"):
        return 0
    return axis


GROUP_OPS = qw.GROUP_OPS


def weight_rows_view(op, ndim: int) -> RowView:
    """The [out][K] rows of op's weight in pack_weights.weight_rows order (GATHER: one row per table
    entry), along which per-group scales run."""
    if op.type == "GATHER":
        return RowView(tuple(range(ndim)), ndim - 1)
    return RowView.of(op.type, op.attrs, ndim)


def quantize_weights(graph: Graph, bits: int = 8, scheme: str = "uniform", per_channel: bool = True,
                     scale: str = "fixed", ops: set[str] | None = None, group_size: int = 0) -> dict:
    """WeightQuant constraints for every weight input (OpDef.weights) of the graph's ops, laid out as
    the quantize pass lays them out (group_size > 0: per-group scales on the weights of GROUP_OPS)."""
    out = {}
    for op in graph.ops:
        d = opreg.get(op.type)
        if ops is not None and op.name not in ops:
            continue
        for k, name in enumerate(op.inputs):
            if name is None or k not in d.weights:
                continue
            t = graph.tensors[name]
            if not t.is_const or t.dtype != "float32" or name in out:
                continue
            axis = weight_layout(op.type, k, bits, scheme, per_channel)
            group = group_size if op.type in GROUP_OPS else 0
            out[name] = WeightQuant(bits, scheme, axis, scale, group_size=group,
                                    rows=weight_rows_view(op, len(t.shape)) if group else None)
    return out


def quantize_activations(graph: Graph, momentum: float = 0.9, ranges: dict | None = None) -> dict:
    """ActQuant constraints (int8) on the graph inputs and every op output."""
    names = list(graph.inputs) + [o for op in graph.ops for o in op.outputs]
    return {n: ActQuant(momentum, (ranges or {}).get(n)) for n in names
            if graph.tensors[n].dtype == "float32"}


def export(model: TrainableGraph, snap: bool = False) -> Graph:
    """A copy of the IR graph with the trained weights written back.

    snap=False writes the latent float weights. snap=True writes each weight's constrained value (its
    fake-quantized / pruned / clustered value, exactly what the trained forward pass used) and records
    the constraints' state in tensor.meta: "qat_scale" (float32 [C] or [1]), "qat_bits", "qat_scheme",
    "qat_axis" for WeightQuant; "qat_levels" (the int8 levels the quantize pass must store: the
    constrained value is exactly qat_levels x qat_scale); for kmeans "qat_codebook" (int8 [n] per tensor
    or [C, n] per channel, sorted: every level of a channel is in its row); for per-group scales
    "qat_group_size" (N) and "qat_group_mult" (uint8 [R, G] on the weight's rows; qat_levels = q x m,
    qat_scale the row scale); "prune_mask"; "centroids"; and "qat_range" (lo, hi) on activations with
    ActQuant.
    """
    g = model.graph.copy()
    for name, v in model.variables.items():
        t = g.tensors[name]
        latent = v.numpy().astype(np.float32)
        t.data = model.weight(name).numpy().astype(np.float32) if snap else latent
        if not snap:
            continue
        for c in model.constraints.get(name, []):
            st = c.state() if callable(getattr(c, "state", None)) else {}
            if "scale" in st:
                t.meta.update(qat_scale=st["scale"], qat_bits=st["bits"], qat_scheme=st["scheme"],
                              qat_axis=st["axis"])
                if "codebook" in st:
                    t.meta["qat_codebook"] = st["codebook"]
                if "group_mult" in st:
                    t.meta.update(qat_group_size=st["group_size"], qat_group_mult=st["group_mult"])
                if c is model.constraints[name][-1]:   # levels of the snapped values: exact
                    t.meta["qat_levels"] = c.levels(t.data)
            if "mask" in st:
                t.meta["prune_mask"] = st["mask"]
            if "centroids" in st:
                t.meta["centroids"] = st["centroids"]
    if snap:
        for name, cs in model.constraints.items():
            for c in cs:
                if hasattr(c, "lo"):
                    g.tensors[name].meta["qat_range"] = c.state()["range"]
    return g
