"""The cycle model: executed instructions, sorted into classes, times the target's cycles per class.

Classes (targets/*.toml [cycles], each figure from the core's TRM or optimisation guide, cited there):
alu, mul (incl. DSP MACs), div, load, store, load_multiple_per_reg (each register after the first
of LDM/POP/LDRD/LDP), branch, fp, fp_div, simd (AArch64 vector instructions). Blocks executed are
counted exactly by the emulator; each distinct block is decoded once with capstone. What the model
leaves out (wait states, caches, stalls, dual issue) is listed in docs/targets.md: the result is an
estimate and is always labelled as one.
"""
from __future__ import annotations

import re
from collections import Counter

CLASSES = ("alu", "mul", "div", "load", "store", "load_multiple_per_reg", "branch", "fp", "fp_div", "simd")
_CONDS = {"eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al"}
_T_BRANCH = {"b", "bl", "blx", "bx", "cbz", "cbnz", "tbb", "tbh"}
_A_BRANCH = {"b", "bl", "br", "blr", "ret", "cbz", "cbnz", "tbz", "tbnz"}
_MUL_PREFIX = ("mul", "mla", "mls", "smul", "umul", "smla", "umla", "smls", "smmla", "smmls", "smmul", "smuad",
               "smusd", "smlad", "smlsd", "usad", "madd", "msub", "mneg", "smaddl", "umaddl", "smsubl", "umsubl")
_VREG = re.compile(r"\bv\d+\.")


def _disassembler(arch: str):
    import capstone
    if arch == "thumb":
        return capstone.Cs(capstone.CS_ARCH_ARM, capstone.CS_MODE_THUMB | capstone.CS_MODE_MCLASS)
    return capstone.Cs(capstone.CS_ARCH_ARM64, capstone.CS_MODE_ARM)


def _nregs(op_str: str) -> int:
    inside = op_str[op_str.find("{") + 1: op_str.find("}")] if "{" in op_str else ""
    n = 0
    for part in inside.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-")
            n += int(re.sub(r"\D", "", b)) - int(re.sub(r"\D", "", a)) + 1
        elif part:
            n += 1
    return max(n, 1)


def classify(mnemonic: str, op_str: str, arch: str) -> Counter:
    """The cost classes one instruction counts for (LDM of n registers: load + (n-1) extra)."""
    m = mnemonic.lower().split(".")[0] if arch == "thumb" else mnemonic.lower()
    c: Counter = Counter()
    if arch == "thumb":
        if m in _T_BRANCH or (m.startswith("b") and m[1:] in _CONDS):
            c["branch"] += 1
        elif m.startswith(("ldm", "pop", "vldm", "vpop")):
            n = _nregs(op_str)
            c["load"] += 1
            c["load_multiple_per_reg"] += n - 1
            if m.startswith("pop") and "pc" in op_str:
                c["branch"] += 1
        elif m.startswith(("stm", "push", "vstm", "vpush")):
            c["store"] += 1
            c["load_multiple_per_reg"] += _nregs(op_str) - 1
        elif m.startswith(("ldr", "vldr", "lda")):
            c["load"] += 1
            c["load_multiple_per_reg"] += 1 if m.startswith("ldrd") else 0
        elif m.startswith(("str", "vstr", "stl")):
            c["store"] += 1
            c["load_multiple_per_reg"] += 1 if m.startswith("strd") else 0
        elif m in ("sdiv", "udiv"):
            c["div"] += 1
        elif m.startswith(("vdiv", "vsqrt")):
            c["fp_div"] += 1
        elif m.startswith("v"):
            c["fp"] += 1
        elif m.startswith(_MUL_PREFIX):
            c["mul"] += 1
        else:
            c["alu"] += 1
        return c
    # AArch64
    if m in _A_BRANCH or m.startswith("b."):
        c["branch"] += 1
    elif m.startswith(("ld", "prfm")):
        c["load"] += 1
        c["load_multiple_per_reg"] += 1 if m.startswith(("ldp", "ldnp")) else 0
    elif m.startswith("st"):
        c["store"] += 1
        c["load_multiple_per_reg"] += 1 if m.startswith(("stp", "stnp")) else 0
    elif _VREG.search(op_str) or m in ("sdot", "udot"):
        c["simd"] += 1
    elif m in ("sdiv", "udiv"):
        c["div"] += 1
    elif m in ("fdiv", "fsqrt"):
        c["fp_div"] += 1
    elif m.startswith("f") or m.startswith(("scvtf", "ucvtf")):
        c["fp"] += 1
    elif m.startswith(_MUL_PREFIX) or m in ("smulh", "umulh", "smull", "umull"):
        c["mul"] += 1
    else:
        c["alu"] += 1
    return c


class BlockClassifier:
    """Class histograms of basic blocks, decoded once per (address, size)."""

    def __init__(self, read, arch: str):
        self.read, self.arch = read, arch
        self.cs = _disassembler(arch)
        self._cache: dict[tuple[int, int], Counter] = {}

    def block(self, address: int, size: int) -> Counter:
        key = (address, size)
        if key not in self._cache:
            h: Counter = Counter()
            for ins in self.cs.disasm(self.read(address, size), address):
                h.update(classify(ins.mnemonic, ins.op_str, self.arch))
            self._cache[key] = h
        return self._cache[key]

    def histogram(self, blocks: dict[tuple[int, int], int]) -> Counter:
        total: Counter = Counter()
        for key, n in blocks.items():
            for cls, k in self.block(*key).items():
                total[cls] += k * n
        return total


def estimate_cycles(hist: Counter, costs: dict) -> float:
    """Σ count(class) × cycles(class); fp_div falls back to 14 × fp, simd to alu, others to alu."""
    fallback = {"fp_div": 14 * costs.get("fp", 1), "load_multiple_per_reg": 1}
    return float(sum(n * costs.get(cls, fallback.get(cls, costs.get("alu", 1))) for cls, n in hist.items()))
