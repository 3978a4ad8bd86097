"""prune_channels: structured pruning that physically removes filters/channels, attention heads, or
whole residual blocks/layers, so that the .tflite and the C project really shrink (no zeros left
behind for a zip to find).

  what="channels"  remove output channels of CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED layers
                   with everything that must go with them (below); `amount` is the fraction of
                   channels (measure="channels") or of the graph's MACs (measure="macs") removed.
  what="heads"     remove whole attention heads; `amount` is the fraction of heads per block
                   (attention blocks: see "Attention heads" below).
  what="layers"    remove `amount` (an integer) residual blocks or same-shape layers, the one whose
                   removal costs the least accuracy on held-out data first, re-ranked after each.

Channel groups (the dependency analysis). Every activation tensor's last axis holds channel slots;
ops tie slots that must be removed together (a union-find over all slots):
  CONV_2D / FULLY_CONNECTED      a new channel per output row; input channels are consumed (the
                                 filters' input columns go with them). A FULLY_CONNECTED reading a
                                 flattened NHWC tensor of C channels (directly or through RESHAPE)
                                 has input column j on channel j % C: the strided set of columns.
  DEPTHWISE_CONV_2D              output channel c*m + j follows input channel c (multiplier m).
  unary activations, pooling,    channel c of the output is channel c of the input.
  PAD / MEAN (off the channel
  axis), RESHAPE / SQUEEZE that
  keep or merge into the last
  axis, RESIZE_*
  ADD / SUB / MUL / PRELU        activation operands of the output's channel count are tied (residual
                                 joins tie their producers); constant operands are sliced with them.
  CONCATENATION                  on the last axis: output channel offset_i + c is input i's channel c;
                                 on another axis, all inputs are tied channel by channel.
A component of tied slots is prunable when no slot reaches a graph input or output and no op the
analysis cannot follow (SOFTMAX over channels, STRIDED_SLICE, TRANSPOSE, BATCH_MATMUL, GATHER, grouped
CONV_2D, TRANSPOSE_CONV, a reshape that splits the channel axis, ...) touches it, and a filter produces it.
Components spanning the same tensors form one group (a "layer" for ranking); a group that cannot be
followed is left whole and reported in `refused`. The cut slices weights, biases, constant operands
and every consumer's input channels, rewrites reshape targets, and the result passes edgec.ir.verify:
zeroing a removed channel's filter and bias first gives exactly the pruned graph's outputs.

Importance: "l1" sums each filter's L1 norm over the group's filters, each layer's norms divided by
their mean; "taylor" is first-order Taylor (Molchanov et al. 2017), the mean over training samples of
|sum over positions of activation x d loss / d activation| at the layer outputs, through the IR
trainer, normalized the same way. scope="layer" removes `amount` of each group (per-layer overrides
may change it, 0 exempts a group); scope="global" ranks all channels by score / group mean.

Schedules: "oneshot" cuts at once, folding each removed channel's mean activation (over a few data
samples) into its consumers' biases; "gradual" first trains `epochs` epochs while the chosen filters
fade to exactly zero (Zhu & Gupta's cubic schedule), so that the cut changes nothing. Fine-tuning then
runs through the IR trainer on ctx.train_data (labels; without labels, or with distill=True: the
unpruned model's outputs) with every tenth sample held out to keep the best epoch. lasso > 0 first
trains under fit's GroupLasso penalty on the prunable filters, driving whole channels toward zero
before they are ranked. docs/pruning_structured.md has the options and the measured results.

Attention heads come in two forms. Sliced: per-head STRIDED_SLICEs of FULLY_CONNECTED projections, a
BATCH_MATMUL in every head, the heads CONCATENATED on the channel axis. On an axis (what TensorFlow's
converter makes of Keras' MultiHeadAttention): Q/K/V projections (FULLY_CONNECTED, or BATCH_MATMUL
with a constant rhs) RESHAPEd into [..., heads, size], TRANSPOSEs, per-head BATCH_MATMULs, SOFTMAX and
elementwise ops with (per-head) constants that carry the head axis along, and one RESHAPE merging
[..., heads, size] back into channels for the output projection. Either way a removed head takes its
projection rows, its slices of per-head constants and its columns of whatever reads the block's
output (the output projection), so zeroing those columns gives exactly the pruned graph's outputs.
Importance "l1" sums a head's projection rows and output-projection columns, each over their mean per
head; "taylor" is the first-order Taylor score of the head's channels in the block output. The
oneshot schedule (with data and compensate) folds the removed heads' mean output into the output
projection's bias, as for channels; the gradual one fades their projection rows and constants to 0.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op, verify
from ..ir import ops as opreg
from ..ir.ops import default_attrs
from .manager import PassContext, register_pass

FILTERED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")   # ops with per-output-channel weights
SOURCES = ("CONV_2D", "FULLY_CONNECTED")                            # ops that create new channels
SAME_CHANNELS = ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "AVERAGE_POOL_2D",
                 "MAX_POOL_2D", "RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR")
ELEMENTWISE = ("ADD", "SUB", "MUL", "PRELU")
STANDALONE_ACT = {"RELU": "RELU", "RELU6": "RELU6", "TANH": "TANH"}   # fused activation -> op
COMPENSATE_SAMPLES = 32    # samples whose mean activations replace removed channels (numpy interpreter)


# =============================================================================================
# Channel groups

class _Slots:
    """Union-find over the channel slots (last-axis positions) of every activation tensor."""

    def __init__(self, g: Graph):
        self.base: dict[str, int] = {}
        self.size: dict[str, int] = {}
        n = 0
        for name, t in g.tensors.items():
            if not t.is_const and len(t.shape) >= 1:
                self.base[name], self.size[name], n = n, t.shape[-1], n + t.shape[-1]
        self.parent = list(range(n))
        self.reasons: dict[int, str] = {}

    def ids(self, name: str, idx=None) -> np.ndarray:
        ids = self.base[name] + np.arange(self.size[name])
        return ids if idx is None else ids[idx]

    def find(self, i: int) -> int:
        p = self.parent
        while p[i] != i:
            p[i] = p[p[i]]
            i = p[i]
        return i

    def union(self, a: np.ndarray, b: np.ndarray) -> None:
        for i, j in zip(a, b):
            ri, rj = self.find(int(i)), self.find(int(j))
            if ri != rj:
                self.parent[ri] = rj

    def tie(self, a: str, b: str) -> None:
        self.union(self.ids(a), self.ids(b))

    def block(self, name: str, reason: str) -> None:
        if name in self.base:
            for i in self.ids(name):
                self.reasons.setdefault(int(i), reason)


@dataclass
class Group:
    """Channels that are ranked and removed as one layer: components spanning the same tensors."""
    name: str                    # the first filtered op producing these channels
    producers: list[str]         # filtered ops (names) whose output channels are in the group
    units: np.ndarray            # component indices, in the first producer's channel order


@dataclass
class ChannelGroups:
    comp: dict[str, np.ndarray]  # activation tensor -> component index of each channel, -1: kept
    groups: list[Group]
    refused: list[dict] = field(default_factory=list)   # {"group", "channels", "reason"}
    why: dict[str, str] = field(default_factory=dict)   # tensor -> why some of its channels stay

    @property
    def count(self) -> int:
        return sum(len(gr.units) for gr in self.groups)


def _act_inputs(g: Graph, op: Op) -> list[str]:
    return [i for i in op.inputs if i is not None and not g.tensors[i].is_const]


def _link(g: Graph, op: Op, s: _Slots, free: set[str]) -> None:
    """Tie (or block) the channel slots op reads and writes; see the module docstring."""
    t, where = op.type, f"{op.type} {op.name}"
    ins = _act_inputs(g, op)
    out = op.outputs[0] if op.outputs else None

    def refuse(reason: str) -> None:
        for name in ins + list(op.outputs):
            s.block(name, reason)

    if out in free:          # a new source: the heads cut rewires the producer itself
        for name in ins:
            s.block(name, f"{where} (attention heads)")
        return
    if len(op.outputs) != 1 or out not in s.base:
        return refuse(where)
    if t in FILTERED:
        w = g.tensors[op.inputs[1]]
        b = g.t(op.inputs[2]) if len(op.inputs) > 2 else None
        if not w.is_const or w.dtype != "float32" or (b is not None and not b.is_const) \
                or ins != [op.inputs[0]]:
            return refuse(f"{where} has non-constant or non-float weights")
        x = op.inputs[0]
        c = g.tensors[x].shape[-1]
        if t == "CONV_2D" and w.shape[3] != c:
            return refuse(f"grouped {where}")
        if t == "DEPTHWISE_CONV_2D":
            if w.shape[0] != 1 or w.shape[3] % c:
                return refuse(f"{where} filter {list(w.shape)}")
            s.union(s.ids(x, np.arange(w.shape[3]) // (w.shape[3] // c)), s.ids(out))
        if t == "FULLY_CONNECTED" and w.shape[1] % c:
            return refuse(f"{where} reads rows of {w.shape[1]} columns from {c}-channel data")
        return
    if t in SAME_CHANNELS or t in ("SQUEEZE", "RESHAPE", "MEAN", "PAD"):
        x = op.inputs[0]
        if x not in s.base or any(i is not None and not g.tensors[i].is_const for i in op.inputs[1:]):
            return refuse(f"{where} has a non-constant operand or reads a constant")
        c, d = s.size[x], s.size[out]
        if t == "MEAN" and len(g.tensors[x].shape) - 1 in _mean_axes(g, op):
            return refuse(f"{where} reduces the channel axis")
        if t == "PAD" and tuple(np.asarray(g.tensors[op.inputs[1]].data).reshape(-1, 2)[-1]) != (0, 0):
            return refuse(f"{where} pads the channel axis")
        if t == "RESHAPE" and d % c == 0:       # keeps or merges into the last axis: slot j is j % c
            return s.union(s.ids(x, np.arange(d) % c), s.ids(out))
        if c != d:
            return refuse(f"{where} changes the channel axis ({c} -> {d})")
        return s.tie(x, out)
    if t in ELEMENTWISE:
        d = s.size[out]
        for name in ins:
            if s.size[name] == d:
                s.tie(name, out)
            elif s.size[name] != 1:
                return refuse(f"{where} broadcasts {name!r}")
        return
    if t == "CONCATENATION":
        rank = len(g.tensors[out].shape)
        if op.attrs.get("axis", 0) % rank != rank - 1:
            if len(ins) != len(op.inputs):
                return refuse(f"{where} joins constants off the channel axis")
            for name in ins:
                s.tie(name, out)
            return
        off = 0
        for name in op.inputs:
            n = g.tensors[name].shape[-1]
            if name in s.base:
                s.union(s.ids(name), s.ids(out, np.arange(off, off + n)))
            off += n
        return
    refuse(f"{where} is not followed")


def _mean_axes(g: Graph, op: Op) -> set[int]:
    rank = len(g.tensors[op.inputs[0]].shape)
    return {int(a) % rank for a in np.asarray(g.tensors[op.inputs[1]].data).reshape(-1)}


def channel_groups(g: Graph, free: frozenset[str] = frozenset()) -> ChannelGroups:
    """The prunable channel groups of float graph `g` (see the module docstring). Tensors in `free`
    count as new channels, whatever produced them (the attention heads' concatenations)."""
    s = _Slots(g)
    for name in g.inputs:
        s.block(name, "graph input")
    for name in g.outputs:
        s.block(name, "graph output")
    for op in g.ops:
        _link(g, op, s, set(free))
    roots = np.array([s.find(i) for i in range(len(s.parent))], np.int64)
    blocked: dict[int, str] = {}
    for i, why in s.reasons.items():
        blocked.setdefault(int(roots[i]), why)
    # the roots that ops create (filters, free tensors), and the tensors each root spans
    sources: dict[int, str] = {}
    for op in g.ops:
        if op.outputs and ((op.type in SOURCES and op.outputs[0] in s.base) or op.outputs[0] in free):
            for r in roots[s.ids(op.outputs[0])].tolist():
                sources.setdefault(r, op.name)
    spans: dict[int, list[str]] = {}
    for name in s.base:
        for r in dict.fromkeys(roots[s.ids(name)].tolist()):
            spans.setdefault(r, []).append(name)
    filtered_by = {op.outputs[0]: op.name for op in g.ops if op.type in FILTERED}
    by_span: dict[tuple, list[int]] = {}
    for r, names in spans.items():
        if r in sources:
            by_span.setdefault(tuple(names), []).append(r)
    index: dict[int, int] = {}
    groups, refused = [], []
    for names, rs in by_span.items():       # in order of first appearance
        producers = [filtered_by[n] for n in names if n in filtered_by] or [sources[rs[0]]]
        reasons = sorted({blocked[r] for r in rs if r in blocked})
        if reasons:
            refused.append({"group": producers[0], "channels": len(rs), "reason": "; ".join(reasons)})
            continue
        start = len(index)
        groups.append(Group(producers[0], producers, np.arange(start, start + len(rs))))
        index.update({r: start + k for k, r in enumerate(rs)})
    comp, why = {}, {}
    for name in s.base:
        rs = roots[s.ids(name)]
        c = np.array([index.get(int(r), -1) for r in rs], np.int64)
        if (c >= 0).any():
            comp[name] = c
        reason = next((blocked[int(r)] for r in rs if int(r) in blocked), None)
        if reason:
            why[name] = reason
    return ChannelGroups(comp, groups, refused, why)


# =============================================================================================
# The cut

def _kept(cg: ChannelGroups, removed: np.ndarray) -> dict[str, np.ndarray]:
    """Tensor -> indices of the channels it keeps, for tensors that lose some."""
    out = {}
    for name, c in cg.comp.items():
        drop = (c >= 0) & removed[np.maximum(c, 0)]
        if drop.any():
            out[name] = np.flatnonzero(~drop)
    return out


def _slices(g: Graph, op: Op, kept: dict) -> dict[int, list[tuple[int, np.ndarray | None]]]:
    """Constant input index -> [(axis, indices kept)] that the cut applies to op's operands."""
    ko, ki = kept.get(op.outputs[0]), kept.get(op.inputs[0])
    if op.type == "CONV_2D":
        return {1: [(0, ko), (3, ki)], 2: [(0, ko)]}
    if op.type == "DEPTHWISE_CONV_2D":
        return {1: [(3, ko)], 2: [(0, ko)]}
    if op.type == "FULLY_CONNECTED":
        cols = None
        if ki is not None:
            c, n = g.tensors[op.inputs[0]].shape[-1], g.tensors[op.inputs[1]].shape[1]
            cols = np.flatnonzero(np.isin(np.arange(n) % c, ki))
        return {1: [(0, ko), (1, cols)], 2: [(0, ko)]}
    if op.type in ELEMENTWISE and ko is not None:
        d = g.tensors[op.outputs[0]].shape[-1]
        return {k: [(-1, ko)] for k, name in enumerate(op.inputs)
                if name is not None and g.tensors[name].is_const and g.tensors[name].shape
                and g.tensors[name].shape[-1] == d > 1}
    return {}


def cut_channels(g: Graph, cg: ChannelGroups, removed: np.ndarray, check: bool = True,
                 means: dict[str, np.ndarray] | None = None) -> Graph:
    """A copy of `g` without the channels of the removed components (a bool mask over units).

    With `means` (tensor -> its mean value over data, see activation_means), a CONV_2D or
    FULLY_CONNECTED that loses input channels adds what they contributed on average to its bias:
    a removed channel is replaced by its mean instead of by zero (exact for channels that are
    constant, as folded batch-norm biases make small filters; convolutions ignore border padding)."""
    out = g.copy()
    kept = {n: idx for n, idx in _kept(cg, removed).items() if n in out.tensors}
    users = out.consumers()
    for op in out.ops:
        edits = _slices(out, op, kept)
        bias = _compensation(out, op, kept, means) if means else None
        if bias is not None:
            b = op.inputs[2] if len(op.inputs) > 2 else None
            if b is None or len(users.get(b, [])) > 1 or b in out.outputs:   # a bias of its own
                data = np.zeros(len(bias), np.float32) if b is None else out.tensors[b].data
                op.inputs[2:3] = [out.const((b or op.name + "_bias") + "_compensated", data.copy())]
                users[op.inputs[2]] = [op]
            t = out.tensors[op.inputs[2]]
            t.data = (t.data + bias).astype(np.float32)
        for k, cuts in edits.items():
            name = op.inputs[k] if k < len(op.inputs) else None
            cuts = [(a, idx) for a, idx in cuts if idx is not None]
            if name is None or not cuts:
                continue
            t = out.tensors[name]
            data, meta = t.data, dict(t.meta)
            for axis, idx in cuts:
                data = np.take(data, idx, axis=axis)
                meta = {m: np.take(v, idx, axis=axis) if isinstance(v, np.ndarray) and v.shape == t.shape else v
                        for m, v in meta.items()}
            if len(users.get(name, [])) == 1 and name not in out.outputs:
                t.data, t.shape, t.meta = data, data.shape, meta
            else:                                  # shared constant: this op gets its own copy
                op.inputs[k] = out.const(name + "_pruned", data)
                out.tensors[op.inputs[k]].meta = meta
    for name, idx in kept.items():
        t = out.tensors[name]
        t.shape = t.shape[:-1] + (len(idx),)
    for op in out.ops:
        if op.type == "RESHAPE" and op.outputs[0] in kept:
            shape = list(out.tensors[op.outputs[0]].shape)
            op.inputs = [op.inputs[0], out.const(op.outputs[0] + "_shape", np.array(shape, np.int32))]
            if "new_shape" in op.attrs:
                op.attrs["new_shape"] = shape
    out.prune_unused()
    return verify(out) if check else out


def _compensation(g: Graph, op: Op, kept: dict, means: dict) -> np.ndarray | None:
    """What the input channels op loses add to its outputs on average (None: it loses none)."""
    x = op.inputs[0] if op.inputs else None
    if op.type not in ("CONV_2D", "FULLY_CONNECTED") or x not in kept or x not in means:
        return None
    c = g.tensors[x].shape[-1]
    gone = np.setdiff1d(np.arange(c), kept[x])
    w = g.tensors[op.inputs[1]].data.astype(np.float64)
    m = means[x].astype(np.float64)
    if op.type == "CONV_2D":        # sum over taps and lost channels of w * channel mean
        channel = m.reshape(-1, c).mean(axis=0)
        return (w[..., gone] * channel[gone]).sum(axis=(1, 2, 3)).astype(np.float32)
    cols = w.shape[1]               # per input column of the rows FULLY_CONNECTED reads
    col_mean = m.reshape(-1, cols).mean(axis=0)
    lost = np.flatnonzero(np.isin(np.arange(cols) % c, gone))
    return (w[:, lost] @ col_mean[lost]).astype(np.float32)


def activation_means(g: Graph, xs: list[np.ndarray], tensors: set[str]) -> dict[str, np.ndarray]:
    """The mean value of each of `tensors` over the samples `xs` (numpy reference interpreter)."""
    from ..ir import interpret
    acc = {t: np.zeros(g.tensors[t].shape, np.float64) for t in tensors}
    n = len(xs[0])
    for i in range(n):
        env = interpret.run(g, [x[i:i + 1] for x in xs], keep=True)
        for t in tensors:
            acc[t] += env[t]
    return {t: v / n for t, v in acc.items()}


def consumer_inputs(g: Graph, cg: ChannelGroups) -> set[str]:
    """The tensors whose channels end in a CONV_2D or FULLY_CONNECTED and may be removed."""
    return {op.inputs[0] for op in g.ops if op.type in ("CONV_2D", "FULLY_CONNECTED") and op.inputs[0] in cg.comp}


# =============================================================================================
# Importance

def _filter_norms(g: Graph, op: Op) -> np.ndarray:
    w = np.abs(g.tensors[op.inputs[1]].data.astype(np.float64))
    return w.sum(axis=(0, 1, 2)) if op.type == "DEPTHWISE_CONV_2D" else w.reshape(w.shape[0], -1).sum(axis=1)


def _per_layer(cg: ChannelGroups, layer_scores: dict[str, np.ndarray]) -> np.ndarray:
    """Sum per-channel scores of layer outputs into components, each layer divided by its mean."""
    score = np.zeros(cg.count)
    for name, v in layer_scores.items():
        c = cg.comp.get(name)
        if c is None:
            continue
        mean = v.mean()
        v = v / mean if mean > 0 else v
        ok = c >= 0
        np.add.at(score, c[ok], v[ok])
    return score


def l1_importance(g: Graph, cg: ChannelGroups) -> np.ndarray:
    return _per_layer(cg, {op.outputs[0]: _filter_norms(g, op) for op in g.ops if op.type in FILTERED})


def _logits(g: Graph):
    """(tensor whose values are the logits of the first output, beta): a SOFTMAX output's input."""
    for op in g.ops:
        if op.type == "SOFTMAX" and g.outputs[0] in op.outputs:
            return op.inputs[0], float(np.float32(op.attrs.get("beta", 1.0)))
    return g.outputs[0], 1.0


def taylor_scores(g: Graph, data: "_Data", tensors: list[str], samples: int, whole: bool = False,
                  batch: int = 64, segments: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Mean over samples of |sum over positions of a * dL/da| per channel of each tensor (whole=True:
    summed over the channels too, one number per tensor; `segments`: tensor -> n, summed over each of
    n equal runs of channels, one number per run, e.g. per attention head), L the cross-entropy
    against the labels (or the unpruned model's top-1 when training data has none)."""
    import tensorflow as tf
    from ..train import build_model
    model = build_model(g)
    xs, labels = data.sample(samples)
    logits_name, beta = _logits(g)
    runs = {t: (segments or {}).get(t, 1 if whole else g.tensors[t].shape[-1]) for t in tensors}
    acc = {t: np.zeros(runs[t]) for t in tensors}
    for i in range(0, len(labels), batch):
        xb = [tf.constant(x[i:i + batch]) for x in xs]
        yb = tf.constant(labels[i:i + batch])
        with tf.GradientTape() as tape:
            env = model.forward(xb, False, keep=True)
            logits = tf.reshape(env[logits_name] * beta, (len(labels[i:i + batch]), -1))
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(yb, logits))
        grads = tape.gradient(loss, [env[t] for t in tensors])
        for t, gr in zip(tensors, grads):
            if gr is None:
                continue
            prod = (env[t] * gr).numpy().reshape(len(yb), -1, runs[t], g.tensors[t].shape[-1] // runs[t])
            acc[t] += np.abs(prod.sum(axis=(1, 3))).sum(axis=0)
    return {t: v / len(labels) for t, v in acc.items()}


# =============================================================================================
# Selection

def choose(groups: list[np.ndarray], count: int, score: np.ndarray, weights: list[float], fraction: float,
           scope: str, min_keep: int) -> np.ndarray:
    """The units to remove (bool mask over `count` units): per group, `fraction * weight` of its units
    with the lowest scores (scope "layer"), or `fraction` of all weighted groups' units by score over
    group mean (scope "global"); every group keeps at least `min_keep` units."""
    removed = np.zeros(count, bool)
    if scope == "layer":
        for units, w in zip(groups, weights):
            n = min(len(units) - min_keep, int(np.floor(fraction * w * len(units) + 0.5)))
            if n > 0:
                removed[units[np.argsort(score[units], kind="stable")[:n]]] = True
        return removed
    norm, room, owner = np.full(count, np.inf), {}, np.zeros(count, np.int64)
    for k, (units, w) in enumerate(zip(groups, weights)):
        if w > 0:
            mean = score[units].mean()
            norm[units] = score[units] / mean if mean > 0 else 0.0
            room[k] = len(units) - min_keep
        owner[units] = k
    budget = int(np.floor(fraction * sum(len(groups[k]) for k in room) + 0.5))
    for u in np.argsort(norm, kind="stable"):
        if budget <= 0 or not np.isfinite(norm[u]):
            break
        if room[owner[u]] > 0:
            removed[u], budget = True, budget - 1
            room[owner[u]] -= 1
    return removed


def graph_macs(g: Graph) -> int:
    return int(sum(opreg.get(op.type).macs(op, [g.t(i) for i in op.inputs], [g.tensors[o] for o in op.outputs])
                   for op in g.ops))


def _stats(g: Graph) -> dict:
    ws = [t for t in g.weights() if t.dtype == "float32"]
    return {"macs": graph_macs(g), "params": int(sum(t.size for t in ws)), "bytes": int(sum(t.nbytes for t in ws))}


def _fit_macs(cut, units_removed, macs0: int, target: float, what: str) -> np.ndarray:
    """The smallest fraction (bisection) whose removal cuts at least `target` of macs0."""
    def saved(f):
        return 1.0 - graph_macs(cut(units_removed(f), False)) / macs0
    if saved(1.0) < target - 1e-9:
        raise EdgecError(f"prune_channels: cannot remove {target:.0%} of the MACs by pruning {what}; "
                         f"at most {saved(1.0):.1%} are in prunable groups")
    lo, hi = 0.0, 1.0
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if saved(mid) >= target - 1e-9 else (mid, hi)
    return units_removed(hi)


# =============================================================================================
# Attention heads

@dataclass
class Attention:
    """One attention block: per-head outputs concatenated on the channel axis, each head reading its
    rows of projections (FULLY_CONNECTED outputs) through STRIDED_SLICEs of their channel axis."""
    concat: str                   # the CONCATENATION op's name
    output: str                   # its output tensor
    heads: list[str]              # its inputs, one per head
    slices: list[list[str]]       # per head, its STRIDED_SLICE ops (names) reading projections
    projections: list[str]        # the FULLY_CONNECTED ops (names) sliced into heads

    @property
    def name(self) -> str:
        return self.concat

    @property
    def count(self) -> int:
        return len(self.heads)


def _channel_slice(g: Graph, op: Op) -> tuple[int, int] | None:
    """(start, stop) when op is a STRIDED_SLICE taking a contiguous range of the last axis only."""
    a = op.attrs
    if op.type != "STRIDED_SLICE" or any(int(a.get(k, 0)) for k in ("ellipsis_mask", "new_axis_mask",
                                                                    "shrink_axis_mask", "offset")):
        return None
    x, y = g.tensors[op.inputs[0]], g.tensors[op.outputs[0]]
    if not all(g.tensors[i].is_const for i in op.inputs[1:4]) or x.shape[:-1] != y.shape[:-1]:
        return None
    begin, strides = (np.asarray(g.tensors[i].data).reshape(-1) for i in (op.inputs[1], op.inputs[3]))
    if len(begin) != len(x.shape) or np.any(strides != 1):
        return None
    start = 0 if int(a.get("begin_mask", 0)) >> (len(begin) - 1) & 1 else int(begin[-1]) % x.shape[-1]
    return start, start + y.shape[-1]


def _head_ops(g: Graph, k: int, head: str, users) -> list[Op]:
    """The ops before g.ops[k] (the concatenation) that only `head` needs: found backwards, an op
    joins when everything reading its outputs has joined (or is the concatenation, for `head`)."""
    cat, cone = g.ops[k], set()
    for op in reversed(g.ops[:k]):
        readers = [u for o in op.outputs for u in users.get(o, [])]
        if readers and not any(o in g.outputs for o in op.outputs) and \
                all(id(u) in cone or (u is cat and op.outputs == [head]) for u in readers):
            cone.add(id(op))
    return [op for op in g.ops[:k] if id(op) in cone]


def attention_blocks(g: Graph) -> list[Attention]:
    """The attention blocks of `g`: a CONCATENATION on the channel axis whose every input is a head
    (its own ops hold a BATCH_MATMUL and slice at least one projection), where everything reading a
    projection is some head's slice and the slices of a projection do not overlap."""
    prod, users = g.producers(), g.consumers()
    blocks = []
    for k, cat in enumerate(g.ops):
        if cat.type != "CONCATENATION" or len(cat.inputs) < 2 or any(g.tensors[i].is_const for i in cat.inputs):
            continue
        rank = len(g.tensors[cat.outputs[0]].shape)
        if cat.attrs.get("axis", 0) % rank != rank - 1 or len(set(cat.inputs)) != len(cat.inputs):
            continue
        slices, owner = [], {}
        for h, head in enumerate(cat.inputs):
            ops = _head_ops(g, k, head, users)
            mine = [op for op in ops if _channel_slice(g, op) and op.inputs[0] in prod
                    and prod[op.inputs[0]].type == "FULLY_CONNECTED"]
            if not mine or not any(op.type == "BATCH_MATMUL" for op in ops):
                break
            slices.append([op.name for op in mine])
            owner.update((op.name, h) for op in mine)
        else:
            projs = {prod[op.inputs[0]].name: prod[op.inputs[0]] for op in g.ops if op.name in owner}
            if all(_projection_ok(g, fc, owner, users) for fc in projs.values()):
                blocks.append(Attention(cat.name, cat.outputs[0], list(cat.inputs), slices, list(projs)))
    return blocks


def _projection_ok(g: Graph, fc: Op, owner: dict, users) -> bool:
    readers = users.get(fc.outputs[0], [])
    if fc.outputs[0] in g.outputs or any(r.name not in owner for r in readers):
        return False
    ranges = sorted(_channel_slice(g, r) for r in readers)
    return all(a[1] <= b[0] for a, b in zip(ranges, ranges[1:]))


def cut_heads(g: Graph, blocks: list, cg: ChannelGroups, removed: np.ndarray, check: bool = True,
              means: dict[str, np.ndarray] | None = None) -> Graph:
    """A copy of `g` without the removed heads (a bool mask over all blocks' heads, in order): their
    ops or head-axis entries and projection rows go, and the consumers of each block's output lose the
    removed heads' channels (`cg`: channel groups with the block outputs free; `means`: as for
    cut_channels, the removed heads' mean outputs go into the consumers' biases)."""
    out = g.copy()
    k = 0
    for b in blocks:
        mask = removed[k:k + b.count]
        k += b.count
        if isinstance(b, HeadAxisAttention):
            _cut_head_axis(out, b, np.flatnonzero(~mask))
        else:
            _cut_sliced_heads(out, b, mask)
    out.remove_dead_ops()
    out = cut_channels(out, cg, _head_channels(g, blocks, cg, removed), check=False, means=means)
    return verify(out) if check else out


def _cut_sliced_heads(out: Graph, b: Attention, mask: np.ndarray) -> None:
    """In place: the concatenation loses the removed heads, the projections keep the live heads'
    rows, packed in order, and the live heads' slices are renumbered."""
    by_name = {op.name: op for op in out.ops}
    ranges = {op.name: _channel_slice(out, op) for op in out.ops if op.type == "STRIDED_SLICE"}
    gone = {b.heads[h] for h in range(b.count) if mask[h]}
    dead = {n for h, head in enumerate(b.heads) if head in gone for n in b.slices[h]}
    by_name[b.concat].inputs = [i for i in by_name[b.concat].inputs if i not in gone]
    for p in b.projections:
        fc = by_name[p]
        live = sorted((by_name[n] for ss in b.slices for n in ss
                       if n not in dead and by_name[n].inputs[0] == fc.outputs[0]),
                      key=lambda op: ranges[op.name])
        rows = []
        for op in live:
            start, stop = ranges[op.name]
            _set_slice(out, op, len(rows), len(rows) + stop - start)
            rows.extend(range(start, stop))
        for j in (1, 2):
            if j < len(fc.inputs) and fc.inputs[j] is not None:
                t = out.tensors[fc.inputs[j]]
                fc.inputs[j] = out.const(t.name + "_heads", np.take(t.data, rows, axis=0))
        y = out.tensors[fc.outputs[0]]
        y.shape = y.shape[:-1] + (len(rows),)


def _set_slice(g: Graph, op: Op, start: int, stop: int) -> None:
    begin = np.asarray(g.tensors[op.inputs[1]].data).copy()
    end = np.asarray(g.tensors[op.inputs[2]].data).copy()
    begin[-1], end[-1] = start, stop
    op.inputs[1] = g.const(op.name + "_begin", begin)
    op.inputs[2] = g.const(op.name + "_end", end)
    bit = 1 << (len(begin) - 1)
    for m in ("begin_mask", "end_mask"):
        op.attrs[m] = int(op.attrs.get(m, 0)) & ~bit


def _head_widths(g: Graph, b) -> list[int]:
    """The channels each head occupies in its block's output, in order."""
    if isinstance(b, HeadAxisAttention):
        return [g.tensors[b.output].shape[-1] // b.count] * b.count
    return [g.tensors[head].shape[-1] for head in b.heads]


def _head_channels(g: Graph, blocks: list, cg: ChannelGroups, removed: np.ndarray) -> np.ndarray:
    """The channel components (of `cg`) that the removed heads' outputs occupy in the block outputs."""
    out = np.zeros(cg.count, bool)
    k = 0
    for b in blocks:
        off, comp = 0, cg.comp[b.output]
        for n in _head_widths(g, b):
            if removed[k]:
                out[comp[off:off + n]] = True
            off, k = off + n, k + 1
    return out


# =============================================================================================
# Attention heads on an axis (Keras MultiHeadAttention)

HEAD_UNARY = ("RELU", "RELU6", "LOGISTIC", "TANH", "HARD_SWISH", "LEAKY_RELU", "SOFTMAX")


@dataclass
class HeadAxisAttention:
    """One attention block whose heads are an axis of its tensors (see the module docstring): head h
    is entry h of that axis from the splitting RESHAPEs to the merging one, and channels
    [h * size, (h + 1) * size) of each projection's output and of the block's output."""
    name: str                     # the merging RESHAPE op's name
    output: str                   # its output tensor, [..., heads * size]: what the output projection reads
    count: int                    # heads
    projections: list[str]        # the projection ops (names) whose channels are split into heads
    axes: dict[str, int]          # every activation tensor carrying the head axis -> that axis


def _projection_weight(g: Graph, p: Op) -> tuple[str, int] | None:
    """(weight tensor, its output-channel axis) of a projection: a FULLY_CONNECTED or a BATCH_MATMUL
    with a constant 2-D float rhs, applied to an activation."""
    if len(p.outputs) != 1 or len(p.inputs) < 2 or g.tensors[p.inputs[0]].is_const:
        return None
    w = g.tensors[p.inputs[1]]
    if not w.is_const or w.dtype != "float32":
        return None
    if p.type == "FULLY_CONNECTED":
        b = g.t(p.inputs[2]) if len(p.inputs) > 2 else None
        return (w.name, 0) if b is None or b.is_const else None
    if p.type == "BATCH_MATMUL" and len(w.shape) == 2:
        return w.name, 0 if p.attrs.get("adj_y") else 1
    return None


def _split_projection(g: Graph, op: Op, prod, users) -> Op | None:
    """The projection whose channels `op` splits into [..., heads, size], if op is such a RESHAPE and
    the only reader of a projection's output."""
    if op.type != "RESHAPE":
        return None
    x, y = g.tensors[op.inputs[0]].shape, g.tensors[op.outputs[0]].shape
    if len(y) != len(x) + 1 or y[:-2] != x[:-1] or y[-2] < 2 or y[-2] * y[-1] != x[-1]:
        return None
    p = prod.get(op.inputs[0])
    if p is None or op.inputs[0] in g.outputs or len(users.get(op.inputs[0], [])) != 1:
        return None
    return p if _projection_weight(g, p) is not None else None


def _follow_head_axis(g: Graph, op: Op, axes: dict[str, int]):
    """Where op puts the head axis of its tracked inputs: the output's axis, "merge" for a RESHAPE of
    [..., heads, size] into channels, or None when op cannot carry it (it mixes heads, reads an
    untracked activation, or reduces / softmaxes over the head axis)."""
    ins = [i for i in op.inputs if i is not None]
    acts = [i for i in ins if not g.tensors[i].is_const]
    if len(op.outputs) != 1 or any(i not in axes for i in acts):
        return None
    x = acts[0]
    s, o, a = g.tensors[x].shape, g.tensors[op.outputs[0]].shape, axes[x]
    t = op.type
    if t in ("RESHAPE", "SQUEEZE"):
        if t == "RESHAPE" and a == len(s) - 2 and o == s[:-2] + (s[-2] * s[-1],):
            return "merge"
        before = int(np.prod(s[:a], dtype=np.int64))    # the axis keeps its extent and what precedes it
        return next((b for b in range(len(o)) if o[b] == s[a] and int(np.prod(o[:b], dtype=np.int64)) == before),
                    None)
    if t == "TRANSPOSE":
        return [int(v) for v in np.asarray(g.tensors[op.inputs[1]].data).reshape(-1)].index(a)
    if t in HEAD_UNARY:
        return None if t == "SOFTMAX" and a == len(s) - 1 else a
    if t in ("ADD", "SUB", "MUL"):
        b = len(o) - (len(s) - a)
        for i in ins:
            ti = g.tensors[i]
            j = len(ti.shape) - (len(o) - b)     # the operand's dim that broadcasts onto the head axis
            if i in axes and axes[i] != j:
                return None
            if ti.is_const and j >= 0 and ti.shape[j] not in (1, s[a]):
                return None
        return b
    if t == "BATCH_MATMUL" and len(acts) == 2:
        rel = {axes[i] - len(g.tensors[i].shape) for i in op.inputs[:2]}   # counted from the end
        r = rel.pop()
        if not rel and r < -2:           # the same batch axis of both operands
            return len(o) + r
    return None


def head_axis_blocks(g: Graph) -> list[HeadAxisAttention]:
    """The attention blocks of `g` whose heads are an axis: the head axis is followed forward from
    every RESHAPE splitting a projection's channels into [..., heads, size]; tensors it joins (ops
    reading several of them) form one block, which counts when every op reading them carries the axis
    or merges it, one RESHAPE merges it back into channels, a BATCH_MATMUL is among them, all splits
    have the same number of heads and no such tensor is a graph output."""
    prod, users = g.producers(), g.consumers()
    axes, parent, splits = {}, {}, {}
    broken, merges, matmuls = [], [], []

    def find(t: str) -> str:
        while parent[t] != t:
            parent[t] = parent[parent[t]]
            t = parent[t]
        return t

    for op in g.ops:
        tracked = [i for i in op.inputs if i in axes]
        if not tracked:
            p = _split_projection(g, op, prod, users)
            if p is not None:
                y = op.outputs[0]
                axes[y], parent[y], splits[y] = len(g.tensors[y].shape) - 2, y, p.name
            continue
        a = _follow_head_axis(g, op, axes)
        if a is None:
            broken.append(tracked[0])
        elif a == "merge":
            merges.append((tracked[0], op))
        else:
            y = op.outputs[0]
            axes[y], parent[y] = a, y
            for i in tracked:
                parent[find(i)] = y
            if op.type == "BATCH_MATMUL":
                matmuls.append(y)
    members: dict[str, list[str]] = {}
    for t in axes:
        members.setdefault(find(t), []).append(t)
    bad = {find(t) for t in broken} | {find(t) for t in axes if t in g.outputs}
    blocks = []
    for root, ts in members.items():
        ms = [op for t, op in merges if find(t) == root]
        counts = {g.tensors[t].shape[axes[t]] for t in ts}
        if root in bad or len(ms) != 1 or len(counts) != 1 or not any(find(t) == root for t in matmuls):
            continue
        blocks.append(HeadAxisAttention(ms[0].name, ms[0].outputs[0], counts.pop(),
                                        [splits[t] for t in ts if t in splits], {t: axes[t] for t in ts}))
    order = {op.name: k for k, op in enumerate(g.ops)}
    return sorted(blocks, key=lambda b: order[b.name])


def _head_rows(g: Graph, p: Op, count: int, heads: np.ndarray) -> tuple[str, int, np.ndarray]:
    """(weight, output-channel axis, the channel indices of `heads`) of projection p."""
    w, axis = _projection_weight(g, p)
    size = g.tensors[w].shape[axis] // count
    return w, axis, (np.asarray(heads, np.int64)[:, None] * size + np.arange(size)).reshape(-1)


def _head_constants(g: Graph, b: HeadAxisAttention) -> list[tuple[Op, int, int]]:
    """(op, input index, axis) of the float constants inside the block with a dim per head."""
    found = []
    for op in g.ops:
        if not op.outputs or op.outputs[0] not in b.axes:
            continue
        y = g.tensors[op.outputs[0]]
        drop = len(y.shape) - b.axes[op.outputs[0]]
        for k, name in enumerate(op.inputs):
            t = g.t(name)
            if t is None or not t.is_const or k in opreg.get(op.type).int_operands:
                continue
            j = len(t.shape) - drop
            if j >= 0 and t.shape[j] == b.count:
                found.append((op, k, j))
    return found


def _cut_head_axis(out: Graph, b: HeadAxisAttention, keep: np.ndarray) -> None:
    """In place: the projections keep the rows of the heads in `keep`, the block's per-head constants
    and every tensor on the head axis are narrowed to them, and its RESHAPEs get their new targets
    (the block output narrows in cut_channels, with the output projection's columns)."""
    by_name = {op.name: op for op in out.ops}
    for name in b.projections:
        p = by_name[name]
        w, axis, rows = _head_rows(out, p, b.count, keep)
        p.inputs[1] = out.const(w + "_heads", np.take(out.tensors[w].data, rows, axis=axis))
        if p.type == "FULLY_CONNECTED" and len(p.inputs) > 2 and p.inputs[2] is not None:
            bias = out.tensors[p.inputs[2]]
            p.inputs[2] = out.const(bias.name + "_heads", np.take(bias.data, rows, axis=0))
        y = out.tensors[p.outputs[0]]
        y.shape = y.shape[:-1] + (len(rows),)
    for op, k, j in _head_constants(out, b):
        t = out.tensors[op.inputs[k]]
        op.inputs[k] = out.const(t.name + "_heads", np.take(t.data, keep, axis=j))
    for name, a in b.axes.items():
        t = out.tensors[name]
        t.shape = t.shape[:a] + (len(keep),) + t.shape[a + 1:]
    targets: dict[tuple, str] = {}          # one shape operand per new target (Q/K/V splits share it)
    for op in out.ops:
        if op.type == "RESHAPE" and op.outputs[0] in b.axes:
            shape = out.tensors[op.outputs[0]].shape
            if shape not in targets:
                targets[shape] = out.const(op.outputs[0] + "_shape", np.array(shape, np.int32))
            op.inputs = [op.inputs[0], targets[shape]]
            if "new_shape" in op.attrs:
                op.attrs["new_shape"] = list(shape)


# =============================================================================================
# Residual blocks and layers

@dataclass
class Removable:
    kind: str        # "residual block" (drop an ADD's non-identity branch) or "layer" (same-shape op)
    name: str        # the ADD's or the layer's op name
    skip: str        # the tensor that replaces the block's output


def removable_blocks(g: Graph) -> list[Removable]:
    prod, users = g.producers(), g.consumers()
    out = []
    for k, op in enumerate(g.ops):
        ins = _act_inputs(g, op)
        y = op.outputs[0] if op.outputs else None
        if y is None or y in g.outputs:
            continue
        if op.type == "ADD" and len(ins) == 2 and len(set(ins)) == 2 and \
                g.tensors[ins[0]].shape == g.tensors[ins[1]].shape == g.tensors[y].shape:
            act = op.attrs.get("fused_activation_function", "NONE")
            for skip, branch in ((ins[0], ins[1]), (ins[1], ins[0])):
                if _branch_of(g, k, branch, skip, prod, users) and (act == "NONE" or act in STANDALONE_ACT):
                    out.append(Removable("residual block", op.name, skip))
        elif op.type in FILTERED and len(ins) == 1 and g.tensors[ins[0]].shape == g.tensors[y].shape:
            out.append(Removable("layer", op.name, ins[0]))
    return out


def _branch_of(g: Graph, k: int, branch: str, skip: str, prod, users) -> bool:
    """Whether `branch` is computed from `skip` (and constants) alone by ops nothing else reads."""
    join, cone, todo = g.ops[k], set(), [branch]
    while todo:
        t = todo.pop()
        if t == skip or g.tensors[t].is_const:
            continue
        p = prod.get(t)
        if p is None:
            return False
        if id(p) not in cone:
            cone.add(id(p))
            todo.extend(i for i in p.inputs if i is not None)
    for op in g.ops:
        if id(op) in cone:
            for o in op.outputs:
                if o in g.outputs or any(id(u) not in cone and u is not join for u in users.get(o, [])):
                    return False
    return bool(cone)


def remove_block(g: Graph, r: Removable) -> Graph:
    out = g.copy()
    op = next(o for o in out.ops if o.name == r.name)
    y = op.outputs[0]
    act = op.attrs.get("fused_activation_function", "NONE") if r.kind == "residual block" else "NONE"
    p = out.producers().get(r.skip)
    idempotent = p is not None and (p.type == act or p.attrs.get("fused_activation_function") == act) \
        and act in ("RELU", "RELU6")
    if act == "NONE" or idempotent:
        out.ops.remove(op)
        out.replace_uses(y, r.skip)
    else:   # the join's activation stays: act(skip + 0)
        out.ops[out.ops.index(op)] = Op(STANDALONE_ACT[act], [r.skip], [y], default_attrs(STANDALONE_ACT[act]),
                                        name=op.name)
    out.remove_dead_ops()
    return verify(out)


# =============================================================================================
# Data, fine-tuning, group lasso

@dataclass
class _Data:
    train: object            # Dataset: float inputs, targets (labels or the unpruned model's outputs)
    val: object | None       # every tenth sample (of >= 50), for keeping the best epoch and reporting
    loss: str                # "crossentropy" or "mse"
    labels_given: bool

    def sample(self, n: int):
        """(inputs, integer labels) of the first n training samples."""
        xs = [x[:n] for x in self.train.xs]
        y = np.asarray(self.train.y[:n])
        return xs, (y.reshape(-1) if y.dtype.kind in "iub" else y.reshape(len(y), -1).argmax(1)).astype(np.int32)


def _inputs(ctx: PassContext) -> list[np.ndarray] | None:
    """The float model inputs of the training (else calibration) data, if any."""
    data = ctx.train_data if ctx.train_data is not None else ctx.calibration
    if data is None:
        return None
    return [np.asarray(x, np.float32) for x in (data.xs if hasattr(data, "xs") else data)]


def _data(g: Graph, ctx: PassContext) -> _Data | None:
    from ..data import Dataset
    xs = _inputs(ctx)
    if xs is None:
        return None
    y = getattr(ctx.train_data if ctx.train_data is not None else ctx.calibration, "y", None)
    if y is not None and not ctx.options["distill"]:
        loss, targets = "crossentropy", np.asarray(y)
    else:                                            # distill the unpruned model's outputs
        from ..train import build_model
        targets = build_model(g).predict(xs)[0]
        loss = "crossentropy" if _logits(g)[0] != g.outputs[0] else "mse"
    n = len(targets)
    held = np.arange(n) % 10 == 9 if n >= 50 else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], "prune train data")
    # held-out data keeps the labels when there are any: the best epoch is the most accurate one
    labelled = y is not None and loss == "crossentropy"
    val_y = np.asarray(y) if labelled else targets
    val = Dataset([x[held] for x in xs], val_y[held], "prune held-out data") if held.any() else None
    return _Data(train, val, loss, labelled)


def _quality(g: Graph, data: _Data, samples: int) -> float:
    """Top-1 accuracy on the held-out data (or the first training samples), against the labels or
    the unpruned model's top-1; for regression outputs, minus the mean squared error."""
    from ..train import accuracy, build_model
    ds = (data.val or data.train).head(samples)
    model = build_model(g)
    if data.loss == "mse":
        out = model.predict(ds.xs)[0]
        return -float(np.mean((out - ds.y) ** 2))
    return accuracy(model, ds)


def _lasso_terms(g: Graph, cg: ChannelGroups) -> list[tuple[str, int, np.ndarray]]:
    """(weight tensor, output-channel axis, component of each output channel or `count` for none) of
    the filtered ops whose outputs are in channel groups."""
    terms = []
    for op in g.ops:
        if op.type in FILTERED and op.outputs[0] in cg.comp:
            c = cg.comp[op.outputs[0]]
            terms.append((op.inputs[1], 3 if op.type == "DEPTHWISE_CONV_2D" else 0,
                          np.where(c >= 0, c, cg.count).astype(np.int32)))
    return terms


def _train(g: Graph, data: _Data, o: dict, epochs: int, ctx: PassContext, cg: ChannelGroups | None = None,
           decay: dict[str, tuple[int, np.ndarray]] | None = None) -> tuple[Graph, dict]:
    """Train through the IR trainer. Plain: fine-tuning that keeps the best epoch on held-out data.
    With `cg`: under fit's group-lasso penalty on the filters of its channel groups (one group per
    output channel of each weight). With `decay` (constant -> (axis, indices)): those slices shrink
    after every step so that they are (1 - step / steps)^3 of what training made them and exactly 0
    at the end (Zhu & Gupta's cubic schedule), while the rest of the network learns to do without."""
    import math
    import tensorflow as tf
    from ..train import build_model, export, fit
    from ..train.fit import GroupLasso
    model = build_model(g)
    regs = () if cg is None else [GroupLasso(float(o["lasso"]), tuple(w for w, _, _ in _lasso_terms(g, cg)))]
    steps = math.ceil(len(data.train) / int(o["batch_size"])) * epochs
    masks = []
    for name, (axis, idx) in (decay or {}).items():
        m = np.zeros(g.tensors[name].shape, bool)
        m[(slice(None),) * (axis % m.ndim) + (idx,)] = True
        masks.append((model.variables[name], tf.constant(m)))

    def fade(step: int) -> None:
        f = ((steps - step) / (steps - step + 1)) ** 3 if step < steps else 0.0
        for v, m in masks:
            v.assign(tf.where(m, v * f, v))
    hist = fit(model, data.train, loss=data.loss, epochs=epochs, batch_size=int(o["batch_size"]),
               lr=float(o["lr"]), schedule="cosine", seed=int(o["seed"]), val=data.val,
               restore_best=data.val is not None and cg is None and not decay, regularizers=regs,
               on_step=fade if masks else None, progress=False if ctx.progress is None else None)
    return export(model), hist


def _decay_channels(g: Graph, cg: ChannelGroups, removed: np.ndarray) -> dict[str, tuple[int, np.ndarray]]:
    """The slices of float constants the cut removes along an output-channel axis (filters, biases,
    per-channel constants of removed channels): what gradual pruning shrinks to zero."""
    kept = _kept(cg, removed)
    out = {}
    for op in g.ops:
        if not op.outputs or op.outputs[0] not in kept:
            continue
        for k, cuts in _slices(g, op, kept).items():
            name = op.inputs[k] if k < len(op.inputs) else None
            if name is not None and g.tensors[name].dtype == "float32":
                axis, idx = cuts[0]
                gone = np.setdiff1d(np.arange(g.tensors[name].shape[axis]), idx)
                out[name] = (axis, gone)
    return out


# =============================================================================================
# The pass

def _check(g: Graph, o: dict) -> None:
    """Options and graph as the pass needs them, else EdgecError naming the culprit."""
    quantized = next((name for name, t in g.tensors.items() if t.quant is not None), None)
    if quantized:
        raise EdgecError(f"prune_channels runs on float graphs (before quantize); tensor {quantized!r} is quantized")
    choices = {"what": ("channels", "heads", "layers"), "measure": ("channels", "macs"),
               "importance": ("l1", "taylor"), "scope": ("layer", "global"), "schedule": ("oneshot", "gradual")}
    for k, allowed in choices.items():
        if o[k] not in allowed:
            raise EdgecError(f"prune_channels: {k} {o[k]!r}: choose {', '.join(allowed)}")
    try:
        a = float(o["amount"])
    except (TypeError, ValueError):
        raise EdgecError(f"prune_channels: amount {o['amount']!r} is not a number") from None
    if o["what"] == "layers":
        if not a.is_integer() or a < 1:
            raise EdgecError(f"prune_channels: layers amount is a number of blocks (an integer >= 1), got {o['amount']}")
        if o["measure"] != "channels":
            raise EdgecError("prune_channels: layers are counted, not measured in MACs (drop measure=macs)")
        if o["schedule"] != "oneshot":
            raise EdgecError("prune_channels: layers are removed one-shot (schedule=oneshot), then fine-tuned")
    elif not 0 < a < 1:
        what = "MACs" if o["measure"] == "macs" else o["what"]
        raise EdgecError(f"prune_channels: amount is the fraction of {what} to remove, in (0, 1); got {o['amount']}")
    if o["epochs"] != "auto" and (isinstance(o["epochs"], bool) or not isinstance(o["epochs"], int) or o["epochs"] < 0):
        raise EdgecError(f"prune_channels: epochs must be 'auto' or an integer >= 0, got {o['epochs']!r}")
    if int(o["min_channels"]) < 1:
        raise EdgecError(f"prune_channels: min_channels must be >= 1, got {o['min_channels']}")
    if float(o["lasso"]) < 0:
        raise EdgecError(f"prune_channels: lasso must be >= 0, got {o['lasso']}")
    if float(o["lasso"]) > 0 and o["what"] != "channels":
        raise EdgecError(f"prune_channels: lasso regularizes channel groups; it does not apply to {o['what']}")


def _weights(ctx: PassContext, g: Graph, groups: list[str]) -> list[float]:
    """Each group's amount relative to the pass amount (per-layer overrides; 0 exempts a group)."""
    ops = {op.name: op for op in g.ops}
    base = float(ctx.options["amount"])
    return [float(ctx.op_options(ops[name])["amount"]) / base for name in groups]


def _prune_channels(g: Graph, ctx: PassContext, data_fn, shrink) -> tuple[Graph, dict]:
    o = ctx.options
    cg = channel_groups(g)
    if not cg.groups:
        raise EdgecError("prune_channels: no prunable channel group in the model"
                         + (f" ({cg.refused[0]['group']}: {cg.refused[0]['reason']})" if cg.refused else ""))
    if o["importance"] == "taylor":
        data = data_fn("taylor importance")
        outs = [op.outputs[0] for op in g.ops if op.type in FILTERED and op.outputs[0] in cg.comp]
        score = _per_layer(cg, taylor_scores(g, data, outs, int(o["samples"])))
    else:
        score = l1_importance(g, cg)
    units = [gr.units for gr in cg.groups]
    weights = _weights(ctx, g, [gr.name for gr in cg.groups])
    min_keep = int(o["min_channels"])

    def removed_at(f):
        return choose(units, cg.count, score, weights, f, o["scope"], min_keep)

    xs = _inputs(ctx) if o["compensate"] and o["schedule"] == "oneshot" else None
    means = activation_means(g, [x[:COMPENSATE_SAMPLES] for x in xs], consumer_inputs(g, cg)) if xs else None

    def cut(removed, check=True):
        return cut_channels(g, cg, removed, check, means)

    if o["measure"] == "macs":
        removed = _fit_macs(cut, removed_at, graph_macs(g), float(o["amount"]), "channels")
    else:
        removed = removed_at(float(o["amount"]))
    norms = _group_norms(g, cg)
    if o["schedule"] == "gradual":      # the removed channels fade to zero first: the cut is then exact
        g = shrink(g, _decay_channels(g, cg, removed))
    out = cut(removed)
    groups = [{"name": gr.name, "producers": gr.producers, "channels_before": len(gr.units),
               "channels_after": int((~removed[gr.units]).sum())} for gr in cg.groups]
    return out, {"removed": int(removed.sum()), "groups": groups, "refused": cg.refused, "compensated": bool(means),
                 "removed_norm_share": round(float(norms[removed].sum() / max(norms.sum(), 1e-30)), 5)}


def _group_norms(g: Graph, cg: ChannelGroups) -> np.ndarray:
    """Per component, the L2 norm of all its filters (what group lasso drives toward zero)."""
    sq = np.zeros(cg.count + 1)
    for w, axis, seg in _lasso_terms(g, cg):
        data = g.tensors[w].data.astype(np.float64)
        np.add.at(sq, seg, np.square(np.moveaxis(data, axis, 0)).reshape(data.shape[axis], -1).sum(axis=1))
    return np.sqrt(sq[:cg.count])


def _prune_heads(g: Graph, ctx: PassContext, data_fn, shrink) -> tuple[Graph, dict]:
    o = ctx.options
    blocks = attention_blocks(g) + head_axis_blocks(g)
    if not blocks:
        raise EdgecError("prune_channels heads: no attention heads recognized (heads are per-head STRIDED_SLICEs "
                         "of FULLY_CONNECTED projections, each with a BATCH_MATMUL, concatenated on the channel "
                         "axis, or projections RESHAPEd into [..., heads, size] through BATCH_MATMULs and back)")
    cg = channel_groups(g, frozenset(b.output for b in blocks))
    for b in blocks:
        if b.output in cg.why:
            raise EdgecError(f"prune_channels heads: the output of attention block {b.name} cannot be "
                             f"narrowed ({cg.why[b.output]})")
    units, k = [], 0
    for b in blocks:
        units.append(np.arange(k, k + b.count))
        k += b.count
    if o["importance"] == "taylor":
        sliced = [h for b in blocks if isinstance(b, Attention) for h in b.heads]
        runs = {b.output: b.count for b in blocks if isinstance(b, HeadAxisAttention)}
        t = taylor_scores(g, data_fn("taylor importance"), sliced + list(runs), int(o["samples"]), whole=True,
                          segments=runs)
        score = np.concatenate([t[b.output] if isinstance(b, HeadAxisAttention) else [t[h][0] for h in b.heads]
                                for b in blocks])
    else:
        score = _head_l1(g, blocks)
    weights = _weights(ctx, g, [b.name for b in blocks])

    def removed_at(f):
        return choose(units, k, score, weights, f, o["scope"], 1)

    xs = _inputs(ctx) if o["compensate"] and o["schedule"] == "oneshot" else None
    outs = {b.output for b in blocks} & consumer_inputs(g, cg)
    means = activation_means(g, [x[:COMPENSATE_SAMPLES] for x in xs], outs) if xs and outs else None

    def cut(removed, check=True):
        return cut_heads(g, blocks, cg, removed, check, means)

    if o["measure"] == "macs":
        removed = _fit_macs(cut, removed_at, graph_macs(g), float(o["amount"]), "heads")
    else:
        removed = removed_at(float(o["amount"]))
    if o["schedule"] == "gradual":      # the removed heads' projection rows fade to zero first
        g = shrink(g, _decay_heads(g, blocks, removed))
    report = [{"name": b.name, "heads_before": b.count, "heads_after": int((~removed[u]).sum())}
              for b, u in zip(blocks, units)]
    return cut(removed), {"removed": int(removed.sum()), "groups": report, "compensated": bool(means)}


def _decay_heads(g: Graph, blocks: list, removed: np.ndarray) -> dict[str, tuple[int, np.ndarray]]:
    """The projection rows (weights and biases) of the removed heads, and their entries of per-head
    constants."""
    by_name, prod = {op.name: op for op in g.ops}, g.producers()
    rows: dict[str, tuple[int, list[int]]] = {}
    k = 0
    for b in blocks:
        gone = np.flatnonzero(removed[k:k + b.count])
        k += b.count
        if isinstance(b, HeadAxisAttention):
            for name in b.projections:
                p = by_name[name]
                w, axis, idx = _head_rows(g, p, b.count, gone)
                rows.setdefault(w, (axis, []))[1].extend(idx.tolist())
                if p.type == "FULLY_CONNECTED" and len(p.inputs) > 2 and p.inputs[2] is not None:
                    rows.setdefault(p.inputs[2], (0, []))[1].extend(idx.tolist())
            for op, j, axis in _head_constants(g, b):
                rows.setdefault(op.inputs[j], (axis, []))[1].extend(gone.tolist())
            continue
        for h in gone:
            for n in b.slices[h]:
                fc = prod[by_name[n].inputs[0]]
                start, stop = _channel_slice(g, by_name[n])
                for j in fc.inputs[1:3]:
                    if j is not None:
                        rows.setdefault(j, (0, []))[1].extend(range(start, stop))
    return {name: (axis, np.array(sorted(set(r)), np.int64)) for name, (axis, r) in rows.items()}


def _head_l1(g: Graph, blocks: list) -> np.ndarray:
    """Per head: the L1 norm of its rows in each projection, over that projection's mean per head
    (heads on an axis: and of its columns in each FULLY_CONNECTED reading the block output)."""
    by_name = {op.name: op for op in g.ops}
    score = []
    for b in blocks:
        if isinstance(b, HeadAxisAttention):
            cols = []
            for name in b.projections:
                w, axis, _ = _head_rows(g, by_name[name], b.count, np.arange(b.count))
                cols.append(np.abs(np.moveaxis(g.tensors[w].data, axis, 0)).reshape(b.count, -1).sum(axis=1))
            c = g.tensors[b.output].shape[-1]
            for op in g.ops:
                if op.type == "FULLY_CONNECTED" and op.inputs[0] == b.output:
                    w = np.abs(g.tensors[op.inputs[1]].data).sum(axis=0)      # per input column
                    cols.append(np.bincount(np.arange(len(w)) % c // (c // b.count), w, b.count))
            per = np.stack(cols, axis=1)
        else:
            per = np.zeros((len(b.heads), len(b.projections)))
            for h, names in enumerate(b.slices):
                for n in names:
                    sl = by_name[n]
                    for j, p in enumerate(b.projections):
                        if by_name[p].outputs[0] == sl.inputs[0]:
                            start, stop = _channel_slice(g, sl)
                            per[h, j] += np.abs(g.tensors[by_name[p].inputs[1]].data[start:stop]).sum()
        mean = per.mean(axis=0)
        score.extend((per / np.where(mean > 0, mean, 1)).sum(axis=1))
    return np.array(score)


def _prune_layers(g: Graph, ctx: PassContext, data_fn, shrink) -> tuple[Graph, dict]:
    """Remove `amount` blocks greedily: each round drops the candidate whose removal keeps the best
    held-out quality (accuracy), then looks for candidates again in the smaller graph."""
    want = int(float(ctx.options["amount"]))
    have = len(removable_blocks(g))
    if have < want:
        raise EdgecError(f"prune_channels layers: {want} requested, the model has {have} removable residual "
                         f"blocks or same-shape layers")
    data = data_fn("ranking layers by accuracy")
    samples = int(ctx.options["samples"])
    removed, ranking = [], []
    for step in range(want):
        cands = removable_blocks(g)
        if not cands:
            raise EdgecError(f"prune_channels layers: {want} requested, only {step} could be removed one after "
                             f"the other")
        tried = sorted(((_quality(remove_block(g, c), data, samples), k, c) for k, c in enumerate(cands)),
                       key=lambda t: (-t[0], t[1]))
        if step == 0:
            ranking = [{"kind": c.kind, "name": c.name, "quality_without": round(q, 5)} for q, _, c in tried]
        q, _, best = tried[0]
        g = remove_block(g, best)
        removed.append({"kind": best.kind, "name": best.name, "quality_without": round(q, 5)})
    return g, {"removed": len(removed), "blocks": removed, "ranking": ranking}


@register_pass("prune_channels", what="channels", amount=0.5, measure="channels", importance="l1",
               scope="layer", min_channels=1, schedule="oneshot", compensate=True, epochs="auto", lr=1e-3,
               batch_size=32, lasso=0.0, distill=False, seed=0, samples=512)
def prune_channels(g: Graph, ctx: PassContext) -> Graph:
    o = ctx.options
    _check(g, o)
    epochs = (10 if ctx.train_data is not None else 0) if o["epochs"] == "auto" else int(o["epochs"])
    if (float(o["lasso"]) > 0 or o["schedule"] == "gradual") and epochs == 0:
        raise EdgecError(f"prune_channels: {'lasso' if float(o['lasso']) > 0 else 'the gradual schedule'} trains "
                         f"before the cut; it needs epochs > 0 and training data")
    unpruned, cached = g, []

    def data_fn(purpose: str) -> _Data:
        """The training data, built once (teacher outputs of the unpruned graph when unlabelled)."""
        if not cached:
            d = _data(unpruned, ctx)
            if d is None:
                raise EdgecError(f"prune_channels: {purpose} needs training data (--train-data D.npz)")
            cached.append(d)
        return cached[0]

    info: dict = {}

    def shrink(g: Graph, decay: dict) -> Graph:
        """The gradual schedule's training before the cut, fading `decay` to zero."""
        g, hist = _train(g, data_fn("the gradual schedule"), o, epochs, ctx, decay=decay)
        info["decay_loss"] = [round(v, 5) for v in hist["loss"]]
        return g

    if epochs > 0:
        info["quality_before"] = round(_quality(g, data_fn("fine-tuning"), 1 << 30), 5)
    if float(o["lasso"]) > 0:
        g, hist = _train(g, data_fn("lasso"), o, epochs, ctx, cg=channel_groups(g))
        info["lasso_loss"] = [round(v, 5) for v in hist["loss"]]
    prune = {"channels": _prune_channels, "heads": _prune_heads, "layers": _prune_layers}[o["what"]]
    g, found = prune(g, ctx, data_fn, shrink)
    info.update(found)
    if epochs > 0:
        data = data_fn("fine-tuning")
        info["quality_pruned"] = round(_quality(g, data, 1 << 30), 5)
        g, hist = _train(g, data, o, epochs, ctx)
        info.update(quality_after=round(_quality(g, data, 1 << 30), 5), finetune_epochs=epochs,
                    finetune_best_epoch=hist["best_epoch"], finetune_loss=[round(v, 5) for v in hist["loss"]],
                    quality=("minus MSE" if data.loss == "mse" else "top-1 accuracy") + " on held-out training data"
                    + (" against the labels" if data.labels_given else " against the unpruned model"))
    before, after = _stats(unpruned), _stats(g)
    widths = {op.name: unpruned.tensors[op.outputs[0]].shape[-1] for op in unpruned.ops if op.type in FILTERED}
    channels = {op.name: [widths[op.name], g.tensors[op.outputs[0]].shape[-1]]
                for op in g.ops if op.name in widths}
    ctx.report.update(what=o["what"], amount=o["amount"], measure=o["measure"], importance=o["importance"],
                      scope=o["scope"], schedule=o["schedule"], **{f"{k}_before": v for k, v in before.items()},
                      **{f"{k}_after": v for k, v in after.items()}, channels=channels, **info)
    return g
