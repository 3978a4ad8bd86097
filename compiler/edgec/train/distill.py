"""Knowledge distillation in the IR trainer: what a student mimics, whom it learns from, and the
students themselves.

Losses, per batch, on the teacher's logits z_t and the student's z_s (the input of the graph's output
SOFTMAX, times its beta; the output itself when it is not a softmax):

  kd      alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T)) + (1 - alpha) * CE(labels, z_s)
          (Hinton et al. 2015: the T^2 keeps the soft-target gradients' scale independent of T)
  mse     alpha * mean((z_s - mean z_s) - (z_t - mean z_t))^2 + (1 - alpha) * CE
          (logits are only defined up to a per-sample shift, so both are centred)
  hints   kd + alpha * sum over hint pairs of |A(f_s) - f_t|^2 / |f_t|^2 (FitNets, Romero et al. 2015):
          f_t, f_s chosen feature maps, A a learned 1x1 convolution (or linear map for [N, C]
          features) from the student's channels to the teacher's; normalised by the teacher
          feature's energy so that the term does not depend on the features' scale
  labels  CE(labels, z_s): the same student trained on labels alone, the baseline

CE is averaged over the samples that have labels (unlabelled samples, label -1, carry the teacher's
signal only). An ensemble of teachers gives the mean of their softened probabilities (kd) or of their
centred logits (mse); hints read the first teacher. With several students (deep mutual learning,
Zhang et al. 2018) each also mimics its peers: + MUTUAL_WEIGHT * mean over peers j of
KL(softmax(z_j) || softmax(z_s)), the peers' predictions held fixed for that step.

Students derived from a teacher graph (derive_student): a width multiplier applied to every channel
group that prune_channels can cut (the same dependency analysis: residual joins, depthwise channels,
flattening into a dense layer are followed; inputs and the class outputs keep their size), and
residual blocks dropped; every weight is then re-initialised as Keras initialises a fresh layer.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgecError
from ..ir import Graph
from ..ir.ops import float_constant_inputs

LOSSES = ("kd", "mse", "hints", "labels")
AUGMENTS = ("noise", "shift", "mixup")
MUTUAL_WEIGHT = 1.0         # DML's weight of the peer term against the student's own loss
NOISE_STD = 0.1             # Gaussian noise, as a fraction of the training inputs' standard deviation
SHIFT_PIXELS = 2            # random shifts of image inputs ([N, H, W, C]) by up to this many pixels
MIXUP_BETA = 0.4            # mixup's Beta(a, a) for the mixing weight (Zhang et al. 2018)
FILTERED = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def _tf():
    import tensorflow as tf
    return tf


# =============================================================================================
# Losses (TF, on a batch)

def soft_targets(tz, temperature: float):
    """Mean over teachers (tz: [K, B, C] logits) of softmax(z / T)."""
    tf = _tf()
    return tf.reduce_mean(tf.nn.softmax(tz / temperature, axis=-1), axis=0)


def kd_loss(zs, soft, temperature: float):
    """T^2 * KL(soft || softmax(zs / T)), averaged over the batch."""
    tf = _tf()
    log_ps = tf.nn.log_softmax(zs / temperature, axis=-1)
    kl = tf.reduce_sum(tf.math.xlogy(soft, soft) - soft * log_ps, axis=-1)
    return temperature * temperature * tf.reduce_mean(kl)


def _centred(z):
    tf = _tf()
    return z - tf.reduce_mean(z, axis=-1, keepdims=True)


def logit_mse(zs, tz):
    """Mean squared difference of centred logits; tz: [K, B, C], the teachers' mean is mimicked."""
    tf = _tf()
    return tf.reduce_mean(tf.square(_centred(zs) - tf.reduce_mean(_centred(tz), axis=0)))


def label_ce(zs, yd, mask):
    """Cross-entropy against target distributions yd [B, C] (one-hot, or mixed by mixup), averaged
    over the samples whose mask is 1 (those with labels); 0 when none has."""
    tf = _tf()
    ce = tf.nn.softmax_cross_entropy_with_logits(yd, zs)
    return tf.reduce_sum(ce * mask) / tf.maximum(tf.reduce_sum(mask), 1.0)


def hint_loss(adapted, ft):
    """|A(f_s) - f_t|^2 / |f_t|^2 over the batch (the teacher's energy held fixed)."""
    tf = _tf()
    ft = tf.stop_gradient(ft)
    return tf.reduce_sum(tf.square(adapted - ft)) / (tf.reduce_sum(tf.square(ft)) + 1e-12)


def mimic_loss(kind: str, zs, tz, temperature: float):
    """The teacher term of loss `kind` (kd, hints: KL at T; mse: centred logits)."""
    if kind == "mse":
        return logit_mse(zs, tz)
    return kd_loss(zs, soft_targets(tz, temperature), temperature)


def peer_loss(zs, peers: list):
    """Deep mutual learning: mean over peers of KL(softmax(z_peer) || softmax(zs)), peers fixed."""
    tf = _tf()
    return tf.add_n([kd_loss(zs, tf.nn.softmax(tf.stop_gradient(zp), axis=-1), 1.0) for zp in peers]) / len(peers)


# =============================================================================================
# Graphs: logits, classes, params

def logits_of(g: Graph) -> tuple[str, float]:
    """(tensor, beta): the logits of the first output -- the input of its SOFTMAX (scaled by beta),
    or the output itself when no SOFTMAX produces it."""
    out = g.outputs[0]
    op = g.producers().get(out)
    if op is not None and op.type == "SOFTMAX":
        return op.inputs[0], float(np.float32(op.attrs.get("beta", 1.0)))
    return out, 1.0


def classes_of(g: Graph) -> int:
    """Class count of the first output (its last dimension)."""
    shape = g.tensors[g.outputs[0]].shape
    if len(shape) < 2 or shape[-1] < 2 or int(np.prod(shape[:-1])) != 1:
        raise EdgecError(f"distillation needs class scores [1, C] as the first output; {g.outputs[0]!r} "
                         f"has shape {list(shape)}")
    return int(shape[-1])


def params(g: Graph) -> int:
    """Float weights (parameters) of a float graph."""
    return int(sum(t.size for t in g.weights() if t.dtype == "float32"))


# =============================================================================================
# Deriving a student from a teacher graph

def parse_derive(spec) -> dict:
    """"width=0.5,depth=-2" (or a dict) as {"width": 0.5, "depth": 2}: the width multiplier on
    channels/units and the number of residual blocks dropped."""
    if isinstance(spec, dict):
        items = dict(spec)
    else:
        items = {}
        for part in str(spec).split(","):
            key, eq, value = part.strip().partition("=")
            if not eq or not key or not value.strip():
                raise EdgecError(f"derive {spec!r}: write width=W,depth=-N (e.g. width=0.5,depth=-2)")
            items[key.strip()] = value.strip()
    unknown = set(items) - {"width", "depth"}
    if unknown:
        raise EdgecError(f"derive: unknown key(s) {', '.join(sorted(unknown))}; use width=W and depth=-N")
    try:
        width = float(items.get("width", 1.0))
        depth = int(items.get("depth", 0))
    except (TypeError, ValueError):
        raise EdgecError(f"derive {spec!r}: width is a number in (0, 1], depth a whole number <= 0") from None
    if not 0.0 < width <= 1.0:
        raise EdgecError(f"derive: width {width:g} must be in (0, 1] (the fraction of channels kept)")
    if depth > 0:
        raise EdgecError(f"derive: depth {depth} must be <= 0 (-N drops N residual blocks)")
    if width == 1.0 and depth == 0:
        raise EdgecError("derive: width=1 and depth=0 would copy the teacher; make it smaller")
    return {"width": width, "depth": -depth}


def _own_constants(g: Graph) -> Graph:
    """Every filtered op with its own float weight and bias (TFLite shares identical constants, e.g.
    all-zero biases; a student trains each separately), a zero bias added where there is none."""
    seen: set[str] = set()
    for op in g.ops:
        for k, name in float_constant_inputs(g, op):
            if name in seen:
                op.inputs[k] = g.const(name + "_own", g.tensors[name].data.copy())
            seen.add(op.inputs[k])
        if op.type in FILTERED and (len(op.inputs) < 3 or op.inputs[2] is None):
            w = g.tensors[op.inputs[1]]
            n = w.shape[3] if op.type == "DEPTHWISE_CONV_2D" else w.shape[0]
            op.inputs[2:3] = [g.const(op.name + "_bias", np.zeros(n, np.float32))]
            seen.add(op.inputs[2])
    return g


def reinitialize(g: Graph, seed: int = 0) -> Graph:
    """A copy with fresh weights: Glorot-uniform filters, zero biases (Keras' defaults); per-channel
    MUL constants (batch-norm scales) set to 1 and ADD/SUB constants to 0; other constants kept."""
    g = _own_constants(g.copy())
    rng = np.random.default_rng(seed)
    for op in g.ops:
        if op.type in FILTERED:
            w = g.tensors[op.inputs[1]]
            if op.type == "CONV_2D":               # [O, KH, KW, I]
                rf = w.shape[1] * w.shape[2]
                fan_in, fan_out = rf * w.shape[3], rf * w.shape[0]
            elif op.type == "DEPTHWISE_CONV_2D":   # [1, KH, KW, C*M]
                rf = w.shape[1] * w.shape[2]
                m = w.shape[3] // g.tensors[op.inputs[0]].shape[-1]
                fan_in, fan_out = rf, rf * m
            else:                                  # [O, I]
                fan_in, fan_out = w.shape[1], w.shape[0]
            limit = math.sqrt(6.0 / (fan_in + fan_out))
            w.data = rng.uniform(-limit, limit, w.shape).astype(np.float32)
            b = g.tensors[op.inputs[2]]
            b.data = np.zeros(b.shape, np.float32)
        elif op.type in ("MUL", "ADD", "SUB"):
            for _, name in float_constant_inputs(g, op):
                t = g.tensors[name]
                t.data = np.full(t.shape, 1.0 if op.type == "MUL" else 0.0, np.float32)
    for t in g.tensors.values():
        t.meta = {}
    return g


def derive_student(teacher: Graph, width: float = 1.0, depth: int = 0, seed: int = 0) -> Graph:
    """A smaller graph of the teacher's family: `depth` residual blocks dropped (from the last one
    back), then round(width * n) (at least 1) of the n channels of every prunable channel group kept,
    then re-initialised. Tensor names are the teacher's, so feature hints can pair them by name."""
    from ..passes.prune_channels import channel_groups, cut_channels, remove_block, removable_blocks
    g = _own_constants(teacher.copy())
    for k in range(depth):
        blocks = [r for r in removable_blocks(g) if r.kind == "residual block"]
        if not blocks:
            raise EdgecError(f"derive: depth=-{depth} but the teacher has only {k} residual block(s) that "
                             f"can be dropped (an ADD of a block's output and its own input)")
        g = remove_block(g, blocks[-1])
    if width < 1.0:
        cg = channel_groups(g)
        if not cg.groups:
            raise EdgecError("derive: the teacher has no channel group a width multiplier can shrink "
                             "(layers between its input and its class outputs)")
        removed = np.zeros(cg.count, bool)
        for group in cg.groups:
            keep = max(1, int(round(width * len(group.units))))
            removed[np.asarray(group.units[keep:], np.int64)] = True
        g = cut_channels(g, cg, removed)
    g.name = f"{teacher.name}_student"
    return reinitialize(g, seed)


def assistant_width(teacher: Graph, student: Graph) -> float:
    """Width multiplier of a teacher assistant half-way between the two in parameters (their
    geometric mean; parameters grow about as the square of the width): (P_s / P_t) ** (1/4)."""
    return float(min(1.0, (params(student) / params(teacher)) ** 0.25))


# =============================================================================================
# Hints

def _resolve(g: Graph, name: str, role: str) -> str:
    """A tensor of g named `name`, or the first output of the op named `name`."""
    if name in g.tensors and not g.tensors[name].is_const:
        return name
    op = next((o for o in g.ops if o.name == name), None)
    if op is None:
        raise EdgecError(f"hint: the {role} has no activation tensor or op named {name!r}")
    return op.outputs[0]


def penultimate(g: Graph) -> str:
    """The features the logits are computed from: the activation input of the op producing them."""
    name, _ = logits_of(g)
    op = g.producers().get(name)
    while op is not None and op.type in ("RESHAPE", "SQUEEZE"):
        op = g.producers().get(op.inputs[0])
    if op is None or op.type not in FILTERED:
        raise EdgecError("hints: cannot find the layer computing the logits; give hints=teacher:student pairs")
    return op.inputs[0]


def hint_pairs(teacher: Graph, student: Graph, hints) -> list[tuple[str, str]]:
    """(teacher tensor, student tensor) pairs: `hints` as "t:s" strings or tuples (tensor or op
    names; a bare name means the same in both), or None for the penultimate features of each."""
    if hints is None:
        pairs = [(penultimate(teacher), penultimate(student))]
    else:
        pairs = []
        for h in ([hints] if isinstance(hints, str) else hints):
            t, s = (h.split(":", 1) if ":" in h else (h, h)) if isinstance(h, str) else h
            pairs.append((_resolve(teacher, t, "teacher"), _resolve(student, s, "student")))
    for t, s in pairs:
        ts, ss = teacher.tensors[t].shape, student.tensors[s].shape
        if len(ts) != len(ss) or len(ts) not in (2, 4) or ts[1:-1] != ss[1:-1]:
            raise EdgecError(f"hint {t!r} {list(ts)} vs {s!r} {list(ss)}: the feature maps must be [1, C] or "
                             f"[1, H, W, C] with the same H and W (the adapter is a 1x1 convolution)")
    return pairs


class Adapter:
    """A learned 1x1 convolution (linear map for [N, C]) from the student's channels to the teacher's."""

    def __init__(self, cin: int, cout: int, seed: int):
        tf = _tf()
        limit = math.sqrt(6.0 / (cin + cout))
        w = np.random.default_rng(seed).uniform(-limit, limit, (cin, cout)).astype(np.float32)
        self.w = tf.Variable(w, name="hint_adapter_w")
        self.b = tf.Variable(np.zeros(cout, np.float32), name="hint_adapter_b")

    @property
    def variables(self) -> list:
        return [self.w, self.b]

    def __call__(self, f):
        tf = _tf()
        return tf.tensordot(f, self.w, axes=[[-1], [0]]) + self.b


# =============================================================================================
# Data and augmentation

@dataclass
class TrainSet:
    """Training inputs (float32, batch first) and labels (int, -1 where a sample has none)."""
    xs: list[np.ndarray]
    labels: np.ndarray
    classes: int

    def __len__(self):
        return len(self.labels)

    @property
    def labelled(self) -> int:
        return int((self.labels >= 0).sum())


def parse_augment(augment) -> tuple[str, ...]:
    """"noise,shift" (or a list) as a tuple of augmentations."""
    if not augment:
        return ()
    names = [a.strip() for a in (augment.split(",") if isinstance(augment, str) else augment) if a.strip()]
    bad = [a for a in names if a not in AUGMENTS]
    if bad:
        raise EdgecError(f"augment {', '.join(bad)}: choose from {', '.join(AUGMENTS)}")
    return tuple(dict.fromkeys(names))


class Augmenter:
    """Per-batch augmentation in numpy, seeded: Gaussian noise, random shifts of image inputs (zero
    fill), mixup (one Beta-distributed weight per batch, pairs by permutation; labels mix likewise and
    a pair counts as labelled only if both samples are)."""

    def __init__(self, kinds: tuple[str, ...], xs: list[np.ndarray], seed: int):
        self.kinds = kinds
        self.rng = np.random.default_rng(seed + 7919)
        self.std = [float(x.std()) for x in xs]

    def __call__(self, xs, yd, mask):
        xs = [x.copy() for x in xs]
        if "shift" in self.kinds:
            for k, x in enumerate(xs):
                if x.ndim == 4:
                    xs[k] = self._shift(x)
        if "noise" in self.kinds:
            xs = [x + self.rng.normal(0.0, NOISE_STD * s, x.shape).astype(np.float32) for x, s in zip(xs, self.std)]
        if "mixup" in self.kinds:
            lam = np.float32(self.rng.beta(MIXUP_BETA, MIXUP_BETA))
            p = self.rng.permutation(len(yd))
            xs = [lam * x + (1 - lam) * x[p] for x in xs]
            yd = lam * yd + (1 - lam) * yd[p]
            mask = mask * mask[p]
        return xs, yd, mask

    def _shift(self, x):
        n, h, w, _ = x.shape
        s = SHIFT_PIXELS
        padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
        dy, dx = self.rng.integers(0, 2 * s + 1, (2, n))
        return np.stack([padded[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


# =============================================================================================
# Teachers

class Teacher:
    """One or several float IR graphs whose logits (and features, for hints: the first graph's) are
    computed in TF; precomputed once for all samples when the inputs do not change between epochs."""

    def __init__(self, graphs: list[Graph]):
        from .model import build_model
        self.graphs = graphs
        self.models = [build_model(g) for g in graphs]
        self.logits = [logits_of(g) for g in graphs]
        c = {classes_of(g) for g in graphs}
        if len(c) != 1:
            raise EdgecError(f"the teachers disagree on the number of classes ({sorted(c)})")
        self.classes = c.pop()

    def forward(self, xs, features: tuple[str, ...] = ()):
        """([K, B, C] logits, [features of the first teacher]) on a batch (TF)."""
        tf = _tf()
        zs, feats = [], []
        for k, (m, (name, beta)) in enumerate(zip(self.models, self.logits)):
            env = m.forward(xs, False, keep=True)
            zs.append(tf.reshape(env[name] * beta, (-1, self.classes)))
            if k == 0:
                feats = [env[f] for f in features]
        return tf.stop_gradient(tf.stack(zs)), [tf.stop_gradient(f) for f in feats]

    def predict_logits(self, xs: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
        """[K, N, C] logits of every teacher (numpy)."""
        tf = _tf()
        fn = tf.function(lambda *a: self.forward(list(a))[0], reduce_retracing=True, autograph=False)
        n = len(xs[0])
        return np.concatenate([fn(*[x[i:i + batch_size] for x in xs]).numpy() for i in range(0, n, batch_size)],
                              axis=1)


# =============================================================================================
# Training

@dataclass
class Options:
    loss: str = "kd"
    temperature: float = 4.0
    alpha: float = 0.9
    epochs: int = 15          # epochs, batch and rate: measured on benchmarks/distillation.py (MNIST CNN)
    batch_size: int = 64
    lr: float = 5e-3
    seed: int = 0
    augment: tuple[str, ...] = ()
    hints: list[tuple[str, str]] = field(default_factory=list)

    def check(self) -> "Options":
        if self.loss not in LOSSES:
            raise EdgecError(f"loss {self.loss!r}: choose one of {', '.join(LOSSES)}")
        if not self.temperature > 0:
            raise EdgecError(f"temperature {self.temperature:g} must be > 0")
        if not 0.0 <= self.alpha <= 1.0:
            raise EdgecError(f"alpha {self.alpha:g} must be in [0, 1] (the weight of the teacher's signal)")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise EdgecError(f"epochs {self.epochs!r} must be a whole number >= 1")
        if int(self.batch_size) < 1 or not float(self.lr) > 0:
            raise EdgecError("batch_size must be >= 1 and lr > 0")
        return self


class _Adam:
    """Adam with a cosine-decayed rate over all steps (as edgec.train.fit), on any variables."""

    def __init__(self, variables: list, lr: float, total: int):
        tf = _tf()
        self.variables, self.lr, self.total = variables, lr, max(1, total)
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.s = [tf.Variable(tf.zeros_like(v), trainable=False) for v in variables]
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False)

    def apply(self, grads) -> None:
        tf = _tf()
        b1, b2, eps = 0.9, 0.999, 1e-7
        self.step.assign_add(1)
        t = tf.cast(self.step, tf.float32)
        rate = self.lr * 0.5 * (1.0 + tf.cos(math.pi * tf.minimum(t - 1.0, self.total) / self.total))
        corr = tf.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t)
        for v, g, m, s in zip(self.variables, grads, self.m, self.s):
            if g is None:
                continue
            g = tf.convert_to_tensor(g)
            m.assign(b1 * m + (1 - b1) * g)
            s.assign(b2 * s + (1 - b2) * g * g)
            v.assign_sub(rate * corr * m / (tf.sqrt(s) + eps))


def train_students(students: list[Graph], teacher: Teacher | None, data: TrainSet, opts: Options,
                   progress=None) -> tuple[list[Graph], dict]:
    """Train one student (or several, mutually) on `data` with `opts`; returns the trained graphs and
    the history {"loss": [per epoch, summed over students], "steps": n}. Deterministic for a seed."""
    from .model import build_model, export
    tf = _tf()
    opts.check()
    tf.random.set_seed(opts.seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    if opts.loss != "labels" and teacher is None:
        raise EdgecError(f"loss {opts.loss} needs a teacher")
    if opts.loss == "labels" and data.labelled < len(data):
        raise EdgecError("loss labels trains on labels alone: every training sample needs a label y "
                         "(drop the unlabelled data, or distill)")
    if opts.alpha < 1.0 and data.labelled == 0 and opts.loss != "labels":
        opts = Options(**{**opts.__dict__, "alpha": 1.0})    # no labels: the teacher's signal only
    for g in students:
        if classes_of(g) != data.classes:
            raise EdgecError(f"the student has {classes_of(g)} classes, the teacher/labels {data.classes}")
    models = [build_model(g) for g in students]
    s_logits = [logits_of(g) for g in students]
    hints = [] if opts.loss == "labels" else list(opts.hints)
    adapters = [[Adapter(g.tensors[s].shape[-1], teacher.graphs[0].tensors[t].shape[-1], opts.seed + 31 * i + j)
                 for j, (t, s) in enumerate(hints)] for i, g in enumerate(students)]
    variables = [v for m in models for v in m.trainable_variables] + \
                [v for row in adapters for a in row for v in a.variables]
    n, bs = len(data), int(opts.batch_size)
    steps = math.ceil(n / bs)
    adam = _Adam(variables, float(opts.lr), steps * opts.epochs)
    augment = Augmenter(opts.augment, data.xs, opts.seed) if opts.augment else None
    in_step = teacher is not None and (augment is not None or hints)
    cached = teacher.predict_logits(data.xs) if teacher is not None and not in_step else None
    t_feats = tuple(t for t, _ in hints)
    T, alpha, kind = float(opts.temperature), float(opts.alpha), opts.loss

    def objective(bx, yd, mask, tz):
        feats = []
        if in_step:
            tz, feats = teacher.forward(bx, t_feats)
        zs, envs = [], []
        for m, (name, beta) in zip(models, s_logits):
            env = m.forward(bx, True, keep=True)
            envs.append(env)
            zs.append(tf.reshape(env[name] * beta, (-1, data.classes)))
        total = tf.constant(0.0)
        for i, z in enumerate(zs):
            ce = label_ce(z, yd, mask)
            if kind == "labels":
                value = ce
            else:
                value = alpha * mimic_loss(kind, z, tz, T) + (1.0 - alpha) * ce
                for a, (_, s), ft in zip(adapters[i], hints, feats):
                    value += alpha * hint_loss(a(envs[i][s]), ft)
            if len(zs) > 1:
                value += MUTUAL_WEIGHT * peer_loss(z, [zp for j, zp in enumerate(zs) if j != i])
            total += value
        return total

    # autograph=False: the graph is walked in Python; converting that walk costs more than training a small model
    @tf.function(reduce_retracing=True, autograph=False)
    def train_step(bx, yd, mask, tz):
        with tf.GradientTape() as tape:
            value = objective(list(bx), yd, mask, tz)
        adam.apply(tape.gradient(value, variables))
        return value

    rng = np.random.default_rng(opts.seed)
    eye = np.eye(data.classes, dtype=np.float32)
    hist = {"loss": [], "steps": 0}
    epochs = range(opts.epochs)
    for _ in (progress("distill", epochs) if progress else epochs):
        order = rng.permutation(n)
        total = 0.0
        for i in range(0, n, bs):
            idx = order[i:i + bs]
            y = data.labels[idx]
            yd, mask = eye[np.maximum(y, 0)], (y >= 0).astype(np.float32)
            bx = [x[idx] for x in data.xs]
            if augment is not None:
                bx, yd, mask = augment(bx, yd, mask)
            tz = cached[:, idx] if cached is not None else np.zeros((1, len(idx), data.classes), np.float32)
            total += float(train_step(tuple(bx), yd, mask, tz)) * len(idx)
            hist["steps"] += 1
        hist["loss"].append(round(total / n, 6))
    return [export(m) for m in models], hist


def predict(g: Graph, xs: list[np.ndarray], batch_size: int = 256) -> np.ndarray:
    """The first output of a float graph on a batch of inputs, run eagerly through the IR trainer
    (for a few hundred samples of a small model, cheaper than tracing a tf.function)."""
    from .model import build_model
    m = build_model(g)
    xs = [np.asarray(x, np.float32) for x in xs]
    return np.concatenate([np.asarray(m.forward([x[i:i + batch_size] for x in xs])[0])
                           for i in range(0, len(xs[0]), batch_size)])


def accuracy(g: Graph, xs: list[np.ndarray], labels: np.ndarray) -> float:
    """Top-1 accuracy of a float graph on labelled data."""
    out = predict(g, xs).reshape(len(labels), -1)
    return float((out.argmax(1) == np.asarray(labels).reshape(-1)).mean())


__all__ = ["LOSSES", "AUGMENTS", "Teacher", "TrainSet", "Options", "Adapter", "train_students", "derive_student",
           "reinitialize", "parse_derive", "parse_augment", "assistant_width", "hint_pairs", "logits_of", "classes_of",
           "params", "predict", "accuracy", "kd_loss", "logit_mse", "label_ce", "hint_loss", "mimic_loss",
           "soft_targets", "peer_loss"]
