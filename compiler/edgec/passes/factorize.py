"""factorize: low-rank factorization of FULLY_CONNECTED (SVD) and CONV_2D (Tucker-2 or CP) layers.

SVD (Denton et al. 2014). W [out, in] = U S V^T; keeping the r largest singular values,
    W_r = (U_r S_r^1/2) (S_r^1/2 V_r^T)
runs as FC(in -> r, weights S_r^1/2 V_r^T, no bias) then FC(r -> out, weights U_r S_r^1/2, the bias and
the fused activation). The square root splits the scale evenly, so neither factor's int8 range is wasted.
By Eckart-Young W_r is the best rank-r approximation; ||W - W_r||^2 / ||W||^2 = 1 - energy kept, where the
energy kept is sum_{i<r} s_i^2 / sum s_i^2. A 1x1 CONV_2D is the matrix [O, I] and factors the same way,
into two 1x1 convolutions (the stride on the first, so it already runs at the output resolution).

Tucker-2 (Kim et al. 2016). W [O, kh, kw, I] ~ G x_O U x_I V with U [O, r_out], V [I, r_in] orthonormal
(HOSVD: the leading left singular vectors of the mode-O and mode-I unfoldings, refined by `hooi_iters`
HOOI sweeps) and the core G = W x_O U^T x_I V^T [r_out, kh, kw, r_in]. It runs as
    1x1 conv (I -> r_in, weights V^T, zero bias)
    kh x kw conv (r_in -> r_out, weights G, the original stride, padding and dilation, zero bias)
    1x1 conv (r_out -> O, weights U, the bias and the fused activation).
A 1x1 convolution of zeros is zero, so projecting the zero-padded input equals zero-padding the projected
one: the chain computes exactly the convolution with G x_O U x_I V. A mode kept at full rank is the
identity and is left out (Tucker-1). With orthonormal U, V the energy kept is ||G||^2 / ||W||^2.

CP (Lebedev et al. 2015). W[o, h, w, i] ~ sum_r A[o, r] B[h, r] C[w, r] D[i, r], fitted by alternating
least squares (initialised from the unfoldings' singular vectors), runs as 1x1 conv (I -> R, D^T), depthwise
kh x 1 (B; stride and dilation along H), depthwise 1 x kw (C; along W), 1x1 conv (R -> O, A, bias,
activation). Padding separates per axis (TFLite pads each axis on its own), so the chain is exactly the
convolution with the CP kernel. Energy kept is the fit 1 - ||W - W_cp||^2 / ||W||^2. CP fits of conv
kernels are less stable than Tucker's and usually need fine-tuning; Tucker is the default.

Ranks, per layer (`rule`):
  energy        the smallest rank keeping `energy` of the squared singular values (each Tucker mode on its
                own spectrum; CP: the smallest rank whose fit reaches it)
  rank          explicit: `rank` (Tucker: one value for both modes or [r_in, r_out]; capped at the dims)
  params, macs  a budget: keep this fraction of the factorizable layers' parameters (MACs). budget = "global"
                picks one energy threshold for all such layers, the highest whose total fits, so ranks go
                where the spectra decay slowest; budget = "layer" holds each layer to the fraction. CP layers
                always take the fraction per layer (trading CP ranks across layers would need a fit per rank).
A layer is rewritten only when both its parameters and its MACs drop (for SVD: r (in + out) < in out);
otherwise it is kept and reported as such. Per-layer overrides (recipe regexes on op names) may change the
method and rank options of the layers they match, e.g. {skip = true} for the first and last layers or
{rule = "rank", rank = 4}; the fine-tuning options are the pass's.

Fine-tuning: with train data (ctx.train_data) and epochs > 0, the factorized float graph is trained through
the IR trainer (edgec.train): cross-entropy on the labels, or without labels distillation from the original
model's outputs; every tenth sample is held out and the best held-out epoch is kept (the untrained
factorization counts as epoch 0, so fine-tuning never ends worse on it than it began).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import EdgecError
from ..ir import Graph, Op, Tensor
from ..ir import ops as opreg
from ..ir.ops import default_attrs
from .manager import PassContext, register_pass, rewrite_ops

FC_METHODS = ("svd", "none")
CONV_METHODS = ("tucker", "cp", "none")
RULES = ("energy", "rank", "params", "macs")
BUDGETS = ("global", "layer")
# cumulative energy reaches 1.0 only up to rounding: a rank counts as keeping `energy` within this
ENERGY_TOL = 1e-9


# ------------------------------------------------------------------------------------------------
# options

def _check_options(o: dict, where: str = "factorize") -> None:
    """EdgecError naming the first bad option (the pass's own or a per-layer override's)."""
    def frac(key):
        v = o[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
            raise EdgecError(f"{where}: {key} must be a fraction in (0, 1], not {v!r}")

    if o["fc"] not in FC_METHODS:
        raise EdgecError(f"{where}: fc must be one of {', '.join(FC_METHODS)}, not {o['fc']!r}")
    if o["conv"] not in CONV_METHODS:
        raise EdgecError(f"{where}: conv must be one of {', '.join(CONV_METHODS)}, not {o['conv']!r}")
    if o["rule"] not in RULES:
        raise EdgecError(f"{where}: rule must be one of {', '.join(RULES)}, not {o['rule']!r}")
    if o["budget"] not in BUDGETS:
        raise EdgecError(f"{where}: budget must be global or layer, not {o['budget']!r}")
    if o["rule"] in ("energy", "params", "macs"):
        frac(o["rule"])
    if o["rule"] == "rank":
        _ranks_option(o["rank"], where)
    for key, lo in (("hooi_iters", 0), ("cp_iters", 1), ("epochs", 0), ("batch_size", 1), ("seed", 0)):
        if isinstance(o[key], bool) or not isinstance(o[key], int) or o[key] < lo:
            raise EdgecError(f"{where}: {key} must be an integer >= {lo}, not {o[key]!r}")
    if isinstance(o["lr"], bool) or not isinstance(o["lr"], (int, float)) or not o["lr"] > 0:
        raise EdgecError(f"{where}: lr must be a positive number, not {o['lr']!r}")
    if not isinstance(o["skip"], bool):
        raise EdgecError(f"{where}: skip must be true or false, not {o['skip']!r}")


def _ranks_option(v, where: str) -> tuple[int, ...]:
    """`rank` as (r,) or (r_in, r_out)."""
    vals = list(v) if isinstance(v, (list, tuple)) else [v]
    if not 1 <= len(vals) <= 2 or any(isinstance(r, bool) or not isinstance(r, int) or r < 1 for r in vals):
        raise EdgecError(f"{where}: rank must be an integer >= 1 or [r_in, r_out], not {v!r}")
    return tuple(vals)


def parse_factorize(text: str) -> dict:
    """The CLI's --factorize value as factorize-pass options.

    METHOD[+METHOD][:RULE[:SCOPE]] with METHOD svd (FULLY_CONNECTED), tucker or cp (CONV_2D) and RULE
    F (energy kept), energy=F, rank=N (tucker: rank=NxM, r_in x r_out), params=F or macs=F (fraction kept),
    SCOPE global (default) or layer for a budget. E.g. svd:0.9, svd:rank=16, svd:params=0.5,
    tucker:0.5, tucker:macs=0.6:layer, cp:rank=8, svd+tucker:params=0.4.
    """
    def bad(why):
        return EdgecError(f"--factorize {text!r}: {why}")

    methods, _, rest = str(text).strip().partition(":")
    opts: dict = {"fc": "none", "conv": "none"}
    for m in methods.split("+"):
        if m == "svd":
            opts["fc"] = "svd"
        elif m in ("tucker", "cp"):
            if opts["conv"] != "none":
                raise bad("choose one of tucker and cp for the convolutions")
            opts["conv"] = m
        else:
            raise bad(f"unknown method {m!r}; choose svd, tucker or cp (joined with +)")
    if not rest:
        return opts
    rule, _, scope = rest.partition(":")
    key, eq, value = rule.partition("=")
    if not eq:
        key, value = "energy", rule
    if key not in RULES:
        raise bad(f"unknown rule {key!r}; give F (energy kept), energy=F, rank=N, params=F or macs=F")
    try:
        if key == "rank":
            parsed = [int(v) for v in value.split("x")]
            parsed = parsed[0] if len(parsed) == 1 else parsed
        else:
            parsed = float(value)
    except ValueError:
        raise bad(f"{key} needs a {'integer' if key == 'rank' else 'number'}, not {value!r}") from None
    opts.update(rule=key, **{key: parsed})
    if scope:
        if scope not in BUDGETS or key not in ("params", "macs"):
            raise bad("only a params/macs budget takes a scope, global or layer")
        opts["budget"] = scope
    _check_options({**_DEFAULTS, **opts}, f"--factorize {text!r}")
    return opts


# ------------------------------------------------------------------------------------------------
# decompositions (float64 throughout)

def _energy_rank(s: np.ndarray, e: float) -> int:
    """Smallest r with sum_{i<r} s_i^2 >= e * sum s_i^2 (at least 1)."""
    c = np.cumsum(s.astype(np.float64) ** 2)
    if c[-1] <= 0:
        return 1
    return int(min(len(s), np.searchsorted(c / c[-1], e - ENERGY_TOL, side="left") + 1))


def _leading(m: np.ndarray, r: int) -> np.ndarray:
    """The r leading left singular vectors of m (fewer if m has fewer columns), each signed so that its
    largest entry is positive, for reproducibility."""
    u = np.linalg.svd(m, full_matrices=False)[0][:, :r]
    flip = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    return u * np.where(flip == 0, 1, flip)


def tucker2(w: np.ndarray, r_in: int, r_out: int, hooi_iters: int):
    """(V [I, r_in], core [r_out, kh, kw, r_in], U [O, r_out]) of w [O, kh, kw, I]; HOSVD then HOOI."""
    o, kh, kw, i = w.shape
    u = _leading(w.reshape(o, -1), r_out)
    v = _leading(np.moveaxis(w, 3, 0).reshape(i, -1), r_in)
    for _ in range(hooi_iters):
        # each factor: the leading subspace of w projected on the other one (De Lathauwer et al. 2000);
        # a projection with fewer columns than the rank leaves the HOSVD factor as it is
        nv = _leading(np.moveaxis(np.einsum("ohwi,or->rhwi", w, u), 3, 0).reshape(i, -1), r_in)
        v = nv if nv.shape[1] == r_in else v
        nu = _leading(np.einsum("ohwi,is->ohws", w, v).reshape(o, -1), r_out)
        u = nu if nu.shape[1] == r_out else u
    core = np.einsum("ohwi,or,is->rhws", w, u, v)
    return v, core, u


def cp_als(w: np.ndarray, rank: int, iters: int, seed: int):
    """CP factors [A (O), B (kh), C (kw), D (I)], each [dim, rank], of w [O, kh, kw, I] by alternating
    least squares; each rank-one term's norm is split evenly over its four vectors."""
    rng = np.random.default_rng(seed)
    factors = []
    for n, dim in enumerate(w.shape):
        unf = np.moveaxis(w, n, 0).reshape(dim, -1)
        f = rng.standard_normal((dim, rank))
        u = _leading(unf, min(dim, rank))
        f[:, :u.shape[1]] = u
        factors.append(f)
    specs = ["or", "hr", "wr", "ir"]
    norm = float(np.sum(w ** 2)) or 1.0
    prev = None
    for _ in range(iters):
        for n in range(4):
            others = [m for m in range(4) if m != n]
            gram = np.ones((rank, rank))
            for m in others:
                gram *= factors[m].T @ factors[m]
            # MTTKRP: the unfolding of w times the Khatri-Rao product of the other factors
            mttkrp = np.einsum("ohwi," + ",".join(specs[m] for m in others) + "->" + specs[n],
                               w, *[factors[m] for m in others], optimize=True)
            factors[n] = mttkrp @ np.linalg.pinv(gram)
        err = float(np.sum((w - cp_kernel(factors)) ** 2)) / norm
        if prev is not None and abs(prev - err) < 1e-7:
            break
        prev = err
    norms = np.stack([np.linalg.norm(f, axis=0) for f in factors])            # [4, rank]
    scale = np.prod(norms, axis=0) ** 0.25
    return [f / np.where(nf == 0, 1, nf) * scale for f, nf in zip(factors, norms)]


def cp_kernel(factors) -> np.ndarray:
    return np.einsum("or,hr,wr,ir->ohwi", *factors, optimize=True)


# ------------------------------------------------------------------------------------------------
# candidate layers

@dataclass
class Layer:
    """One FULLY_CONNECTED or CONV_2D the pass may factorize, and what is known about it."""
    op: Op
    method: str                 # "svd" (FC or 1x1 conv), "tucker" or "cp"
    opts: dict
    w: np.ndarray               # float64: FC [out, in], conv [O, kh, kw, I]
    has_bias: bool
    rows: int = 1               # FC: rows of the input; conv: unused
    in_hw: tuple = (1, 1)       # conv: input and output spatial sizes
    out_hw: tuple = (1, 1)
    spectra: list = field(default_factory=list)   # svd: [s]; tucker: [s_in, s_out]
    ranks: tuple | None = None
    status: str = ""
    cp_cache: dict = field(default_factory=dict)  # rank -> (factors, fit)

    @property
    def dims(self) -> tuple:
        """Upper bounds of the ranks: the ranks of the unfoldings (svd: min(out, in); tucker: I, O at most);
        none for CP."""
        return tuple(len(s) for s in self.spectra) if self.method != "cp" else (10 ** 9,)

    def _matrix(self) -> np.ndarray:
        return self.w if self.w.ndim == 2 else self.w.reshape(self.w.shape[0], -1)

    def original(self) -> tuple[int, int]:
        """(params, MACs) of the layer as it is."""
        bias = self.w.shape[0] if self.has_bias else 0
        if self.w.ndim == 2:
            return self.w.size + bias, self.rows * self.w.size
        oh, ow = self.out_hw
        return self.w.size + bias, oh * ow * self.w.size

    def cost(self, ranks: tuple) -> tuple[int, int]:
        """(params, MACs) of the factorized layer, zero biases of the inner convolutions included (they
        are stored: TFLite's CONV_2D needs a bias)."""
        bias = self.w.shape[0] if self.has_bias else 0
        if self.w.ndim == 2:
            o, i = self.w.shape
            r = ranks[0]
            return r * (i + o) + bias, self.rows * r * (i + o)
        o, kh, kw, i = self.w.shape
        (h, w), (oh, ow) = self.in_hw, self.out_hw
        if self.method == "svd":            # 1x1 conv: two 1x1 convs at the output resolution
            r = ranks[0]
            return r * (i + o) + r + bias, oh * ow * r * (i + o)
        if self.method == "tucker":
            r_in, r_out = ranks
            p, m = kh * kw * r_in * r_out + r_out, oh * ow * kh * kw * r_in * r_out
            if r_in < i:
                p, m = p + r_in * i + r_in, m + h * w * i * r_in
            if r_out < o:
                p, m = p + o * r_out, m + oh * ow * r_out * o
            return p + bias - (0 if r_out < o else r_out), m
        r = ranks[0]                        # cp
        p, m = r * (i + o) + r + bias, h * w * i * r + oh * ow * r * o
        if kh > 1:
            p, m = p + r * (kh + 1), m + oh * (w if kw > 1 else ow) * kh * r
        if kw > 1:
            p, m = p + r * (kw + 1), m + oh * ow * kw * r
        return p, m

    def shrinks(self, ranks: tuple) -> bool:
        (p0, m0), (p1, m1) = self.original(), self.cost(ranks)
        return p1 < p0 and m1 < m0

    # -- rank rules ------------------------------------------------------------------------------
    def energy_ranks(self, e: float) -> tuple:
        if self.method == "cp":
            return (self.cp_rank_for_fit(e),)
        return tuple(_energy_rank(s, e) for s in self.spectra)

    def breakpoints(self) -> np.ndarray:
        """The energies at which energy_ranks changes."""
        out = []
        for s in self.spectra:
            c = np.cumsum(s ** 2)
            out.append(c / c[-1] if c[-1] > 0 else np.ones(1))
        return np.concatenate(out)

    def explicit_ranks(self, value) -> tuple:
        rs = _ranks_option(value, f"factorize {self.op.name}")
        if self.method == "tucker":
            rs = rs if len(rs) == 2 else rs * 2
        elif len(rs) == 2 and self.op.type == "CONV_2D":     # a 1x1 conv is a matrix: one rank, <= both
            rs = (min(rs),)
        elif len(rs) != 1:
            raise EdgecError(f"factorize {self.op.name}: rank [r_in, r_out] is for convolutions; "
                             f"{self.op.type} takes one rank")
        return tuple(min(r, d) for r, d in zip(rs, self.dims))

    def max_cp_rank(self) -> int:
        """The largest CP rank at which params and MACs still drop (0 if none)."""
        r = 0
        while self.shrinks((r + 1,)):
            r += 1
        return r

    def cp(self, rank: int):
        if rank not in self.cp_cache:
            f = cp_als(self.w, rank, self.opts["cp_iters"], self.opts["seed"])
            norm = float(np.sum(self.w ** 2)) or 1.0
            self.cp_cache[rank] = (f, 1.0 - float(np.sum((self.w - cp_kernel(f)) ** 2)) / norm)
        return self.cp_cache[rank]

    def cp_rank_for_fit(self, e: float) -> int:
        """The smallest CP rank (bisection; fits grow with the rank) whose fit reaches e, or one past the
        largest rank that still shrinks the layer when none does."""
        hi = self.max_cp_rank()
        if hi == 0 or self.cp(hi)[1] < e - ENERGY_TOL:
            return hi + 1
        lo = 1
        while lo < hi:
            mid = (lo + hi) // 2
            if self.cp(mid)[1] >= e - ENERGY_TOL:
                hi = mid
            else:
                lo = mid + 1
        return lo


def _candidate(g: Graph, op: Op, opts: dict) -> Layer | str | None:
    """The layer, if `op` is one the pass factorizes under `opts`; else why not (None: not its kind)."""
    method = {"FULLY_CONNECTED": opts["fc"], "CONV_2D": opts["conv"]}.get(op.type, "none")
    if method == "none":
        return None
    if opts["skip"]:
        return "skipped"
    x, w = g.tensors[op.inputs[0]], g.tensors[op.inputs[1]]
    b = g.t(op.inputs[2]) if len(op.inputs) > 2 else None
    if w.dtype != "float32" or x.dtype != "float32" or (b is not None and b.dtype != "float32"):
        raise EdgecError(f"factorize: {op.type} {op.name} is not float32 ({w.dtype} weights); "
                         f"run factorize before quantize")
    if not w.is_const or (b is not None and not b.is_const):
        return "skipped: weights computed at run time"
    wd = w.data.astype(np.float64)
    if op.type == "FULLY_CONNECTED":
        layer = Layer(op, "svd", opts, wd, b is not None, rows=x.size // w.shape[1])
        layer.spectra = [np.linalg.svd(wd, compute_uv=False)]
        return layer
    if w.shape[3] != x.shape[3]:
        return "skipped: grouped convolution"
    kh, kw = w.shape[1:3]
    method = "svd" if kh == kw == 1 else method
    layer = Layer(op, method, opts, wd, b is not None, in_hw=x.shape[1:3], out_hw=g.tensors[op.outputs[0]].shape[1:3])
    if method == "svd":
        layer.spectra = [np.linalg.svd(wd.reshape(w.shape[0], -1), compute_uv=False)]
    elif method == "tucker":
        layer.spectra = [np.linalg.svd(np.moveaxis(wd, 3, 0).reshape(w.shape[3], -1), compute_uv=False),
                         np.linalg.svd(wd.reshape(w.shape[0], -1), compute_uv=False)]
    return layer


# ------------------------------------------------------------------------------------------------
# rank choice

def _budget_ranks(layers: list[Layer], kind: str, frac: float) -> dict:
    """Ranks under one global budget: the highest shared energy threshold whose total cost (a layer that
    would not shrink counts at its original cost) is within frac of the layers' original cost."""
    k = 0 if kind == "params" else 1
    target = frac * sum(lay.original()[k] for lay in layers)

    def total(e):
        cost = 0
        for lay in layers:
            rs = lay.energy_ranks(e)
            cost += lay.cost(rs)[k] if lay.shrinks(rs) else lay.original()[k]
        return cost

    levels = np.unique(np.concatenate([lay.breakpoints() for lay in layers]))
    lo, hi = 0, len(levels) - 1                    # total(levels[i]) grows with i: bisect the last fit
    if total(levels[0]) > target:
        best = levels[0]
    else:
        while lo < hi:
            mid = (lo + hi + 1) // 2
            lo, hi = (mid, hi) if total(levels[mid]) <= target else (lo, mid - 1)
        best = levels[lo]
    achieved = total(best) / max(1, sum(lay.original()[k] for lay in layers))
    for lay in layers:
        lay.ranks = lay.energy_ranks(best)
    return {"rule": kind, "fraction": frac, "scope": "global", "layers": len(layers),
            "energy_threshold": round(float(best), 6), "achieved": round(float(achieved), 4),
            "met": bool(achieved <= frac + 1e-12)}


def _layer_budget_ranks(lay: Layer, kind: str, frac: float) -> tuple:
    """The largest ranks within frac of the layer's own cost (smallest ranks if none is)."""
    k = 0 if kind == "params" else 1
    target = frac * lay.original()[k]
    if lay.method == "cp":
        r = 1
        while lay.cost((r + 1,))[k] <= target:
            r += 1
        return (r,)
    fits = [e for e in lay.breakpoints() if lay.cost(lay.energy_ranks(e))[k] <= target]
    return lay.energy_ranks(max(fits) if fits else float(lay.breakpoints().min()))


def _choose_ranks(layers: list[Layer]) -> list[dict]:
    """Set each layer's ranks by its rule; returns the global budgets' summaries."""
    groups: dict[tuple, list[Layer]] = {}
    for lay in layers:
        o = lay.opts
        if o["rule"] == "rank":
            lay.ranks = lay.explicit_ranks(o["rank"])
        elif o["rule"] == "energy":
            lay.ranks = lay.energy_ranks(float(o["energy"]))
        elif o["budget"] == "layer" or lay.method == "cp":
            lay.ranks = _layer_budget_ranks(lay, o["rule"], float(o[o["rule"]]))
        else:
            groups.setdefault((o["rule"], float(o[o["rule"]])), []).append(lay)
    return [_budget_ranks(group, kind, frac) for (kind, frac), group in groups.items()]


# ------------------------------------------------------------------------------------------------
# rewriting

def _conv_attrs(act: str = "NONE") -> dict:
    """A 1x1 CONV_2D's options: stride 1, no padding, fused `act`."""
    return default_attrs("CONV_2D", padding="VALID", stride_h=1, stride_w=1, fused_activation_function=act)


def _chain(g: Graph, op: Op, stages: list[tuple[str, np.ndarray, dict]]) -> list[Op]:
    """Ops for stages (type, weights, attrs) from op's input to op's output. Inner stages get a zero bias
    (TFLite's CONV_2D needs one; FULLY_CONNECTED none) and write new tensors named after op; the last
    stage takes op's bias and writes op's output under op's name."""
    x, ops = op.inputs[0], []
    for k, (typ, w, attrs) in enumerate(stages):
        wname = g.const(f"{op.name}_f{k + 1}_w", w.astype(np.float32))
        if k == len(stages) - 1:
            ops.append(Op(typ, [x, wname] + list(op.inputs[2:3]), list(op.outputs), attrs, name=op.name))
            break
        ins = [x, wname]
        if typ != "FULLY_CONNECTED":
            ins.append(g.const(f"{op.name}_f{k + 1}_b", np.zeros(w.shape[0] if typ == "CONV_2D" else w.shape[3],
                                                                 np.float32)))
        out = g.unique_name(f"{op.name}_f{k + 1}")
        new = Op(typ, ins, [out], attrs)
        g.add_tensor(Tensor(out, opreg.get(typ).shape(new, [g.t(i) for i in ins])[0]))
        ops.append(new)
        x = out
    return ops


def _rewrite(g: Graph, lay: Layer) -> tuple[list[Op], float]:
    """The ops replacing lay.op at lay.ranks, and the energy they keep."""
    op, w, a = lay.op, lay.w, lay.op.attrs
    act = a.get("fused_activation_function", "NONE") or "NONE"
    norm = float(np.sum(w ** 2)) or 1.0
    if lay.method == "svd":
        r = lay.ranks[0]
        u, s, vt = np.linalg.svd(lay._matrix(), full_matrices=False)
        root = np.sqrt(s[:r])
        first, second = root[:, None] * vt[:r], u[:, :r] * root[None, :]
        kept = float(np.sum(s[:r] ** 2)) / (float(np.sum(s ** 2)) or 1.0)
        if op.type == "FULLY_CONNECTED":
            return _chain(g, op, [("FULLY_CONNECTED", first, {**a, "fused_activation_function": "NONE"}),
                                  ("FULLY_CONNECTED", second, dict(a))]), kept
        return _chain(g, op, [("CONV_2D", first.reshape(r, 1, 1, -1), {**a, "fused_activation_function": "NONE"}),
                              ("CONV_2D", second.reshape(-1, 1, 1, r), _conv_attrs(act))]), kept
    o, kh, kw, i = w.shape
    inner = {**a, "fused_activation_function": "NONE"}       # the original geometry, no activation
    if lay.method == "tucker":
        r_in, r_out = lay.ranks
        v, core, u = tucker2(w, r_in, r_out, lay.opts["hooi_iters"])
        kept = 1.0 - float(np.sum((w - np.einsum("rhws,is,or->ohwi", core, v, u)) ** 2)) / norm
        stages = []
        if r_in < i:
            stages.append(("CONV_2D", v.T.reshape(r_in, 1, 1, i), _conv_attrs()))
        else:                                  # a full-rank mode is the identity: fold V into the core
            core = np.einsum("rhws,is->rhwi", core, v)
        if r_out < o:
            stages += [("CONV_2D", core, inner), ("CONV_2D", u.reshape(o, 1, 1, r_out), _conv_attrs(act))]
        else:
            stages.append(("CONV_2D", np.einsum("rhws,or->ohws", core, u), dict(a)))
        return _chain(g, op, stages), kept
    (fa, fb, fc, fd), kept = lay.cp(lay.ranks[0])
    r = fa.shape[1]
    sh, sw = a["stride_h"], a["stride_w"]
    dh, dw = a.get("dilation_h_factor", 1) or 1, a.get("dilation_w_factor", 1) or 1

    def depthwise(kernel, stride, dilation):
        return ("DEPTHWISE_CONV_2D", kernel, default_attrs(
            "DEPTHWISE_CONV_2D", padding=a["padding"], stride_h=stride[0], stride_w=stride[1], depth_multiplier=1,
            dilation_h_factor=dilation[0], dilation_w_factor=dilation[1], fused_activation_function="NONE"))

    # each depthwise takes the stride and dilation of its axis; a 1-wide axis has no depthwise of its own
    # (its one tap scales A, and its stride, with no padding along it, moves to the other depthwise)
    stages = [("CONV_2D", fd.T.reshape(r, 1, 1, i), _conv_attrs())]
    scale = np.ones(r)
    if kh > 1:
        stages.append(depthwise(fb.reshape(1, kh, 1, r), (sh, 1 if kw > 1 else sw), (dh, 1)))
    else:
        scale = scale * fb[0]
    if kw > 1:
        stages.append(depthwise(fc.reshape(1, 1, kw, r), (1 if kh > 1 else sh, sw), (1, dw)))
    else:
        scale = scale * fc[0]
    stages.append(("CONV_2D", (fa * scale).reshape(o, 1, 1, r), _conv_attrs(act)))
    return _chain(g, op, stages), kept


# ------------------------------------------------------------------------------------------------
# the pass

_DEFAULTS = dict(fc="svd", conv="tucker", rule="energy", energy=0.9, rank=8, params=0.5, macs=0.5,
                 budget="global", hooi_iters=2, cp_iters=100, skip=False, epochs=5, lr=1e-3,
                 batch_size=32, seed=0)


def graph_params(g: Graph) -> int:
    """Float parameters: every float32 constant read as a float operand, counted once."""
    names = {n for op in g.ops for _, n in opreg.float_constant_inputs(g, op)}
    return int(sum(g.tensors[n].size for n in names))


def graph_macs(g: Graph) -> int:
    return int(sum(opreg.get(op.type).macs(op, [g.t(i) for i in op.inputs], [g.tensors[o] for o in op.outputs])
                   for op in g.ops))


@register_pass("factorize", **_DEFAULTS)
def factorize(g: Graph, ctx: PassContext) -> Graph:
    _check_options(ctx.options)
    original = g.copy()
    params0, macs0 = graph_params(g), graph_macs(g)
    layers, rows = [], []
    for op in g.ops:
        if op.type not in ("FULLY_CONNECTED", "CONV_2D"):
            continue
        opts = ctx.op_options(op)
        if opts != ctx.options:
            _check_options(opts, f"factorize (override for {op.name})")
        lay = _candidate(g, op, opts)
        if isinstance(lay, Layer):
            layers.append(lay)
        elif lay is not None:
            rows.append({"name": op.name, "op": op.type, "status": lay})
    budgets = _choose_ranks(layers)
    chosen = {}
    for lay in layers:
        if lay.ranks and all(r <= d for r, d in zip(lay.ranks, lay.dims)) and lay.shrinks(lay.ranks):
            chosen[id(lay.op)] = lay
        else:
            lay.status = "kept: would not shrink"
    done: dict[int, dict] = {}

    def rewrite(op: Op, g: Graph):
        lay = chosen.get(id(op))
        if lay is None:
            return None
        new, kept = _rewrite(g, lay)
        (p0, m0), (p1, m1) = lay.original(), lay.cost(lay.ranks)
        done[id(op)] = {"name": op.name, "op": op.type, "method": lay.method, "status": "factorized",
                        "ranks": list(lay.ranks), "params_before": p0, "params_after": p1, "macs_before": m0,
                        "macs_after": m1, "energy_kept": round(kept, 6), "ops": [o.type for o in new]}
        return new

    rewrite_ops(g, rewrite)
    for lay in layers:
        if id(lay.op) in done:
            rows.append(done[id(lay.op)])
        else:
            p0, m0 = lay.original()
            rows.append({"name": lay.op.name, "op": lay.op.type, "method": lay.method, "status": lay.status,
                         "ranks": list(lay.ranks or ()), "params_before": p0, "params_after": p0,
                         "macs_before": m0, "macs_after": m0})
    order = {op.name: k for k, op in enumerate(original.ops)}
    rows.sort(key=lambda r: order.get(r["name"], 0))
    ctx.report.update(layers=rows, factorized=len(done), params_before=params0, params_after=graph_params(g),
                      macs_before=macs0, macs_after=graph_macs(g))
    if budgets:
        ctx.report["budgets"] = budgets
    if done and ctx.train_data is not None and ctx.options["epochs"] > 0:
        g = _fine_tune(g, original, ctx)
    else:
        ctx.report["fine_tuned"] = False
    return g


def _fine_tune(g: Graph, original: Graph, ctx: PassContext) -> Graph:
    """Train the factorized graph (all float weights) on ctx.train_data; keep the best held-out epoch."""
    from ..data import Dataset
    from ..train import accuracy, build_model, export, fit

    o, data = ctx.options, ctx.train_data
    xs = [np.asarray(x, np.float32) for x in data.xs]
    from .distill_step import teacher_signal
    sig = teacher_signal(ctx, g, xs, data.y)
    if sig is not None:                             # a distill step ran before: learn from its teacher
        loss, targets, target_kind = sig.loss, sig.targets, "teacher"
    elif data.y is not None:
        loss, targets, target_kind = "crossentropy", np.asarray(data.y), "labels"
    else:                                           # distill the original model's outputs
        targets = build_model(original).predict(xs)[0]
        soft = any(op.type == "SOFTMAX" and original.outputs[0] in op.outputs for op in original.ops)
        loss, target_kind = ("crossentropy" if soft else "mse"), "distill"
    n = len(targets)
    held = np.arange(n) % 10 == 9 if n >= 50 else np.zeros(n, bool)
    train = Dataset([x[~held] for x in xs], targets[~held], "factorize train data")
    val = Dataset([x[held] for x in xs], targets[held], "factorize held-out data") if held.any() else None
    model = build_model(g)
    classify = loss == "crossentropy" and val is not None
    before = accuracy(model, val) if classify else None
    hist = fit(model, train, loss=loss, epochs=int(o["epochs"]), batch_size=int(o["batch_size"]), lr=float(o["lr"]),
               schedule="cosine", seed=int(o["seed"]), val=val, restore_best=val is not None,
               progress=False if ctx.progress is None else None)
    ctx.report.update(fine_tuned=True, finetune_target=target_kind, finetune_epochs=hist["epochs"],
                      finetune_best_epoch=hist["best_epoch"], finetune_loss=[round(v, 5) for v in hist["loss"]])
    if classify:
        best = hist["best_epoch"] or 0
        ctx.report.update(finetune_heldout_accuracy_before=round(before, 4),
                          finetune_heldout_accuracy_after=round(hist["val_accuracy"][best - 1] if best else before, 4))
    return export(model)
