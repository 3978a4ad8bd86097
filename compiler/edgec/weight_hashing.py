"""The hashing trick for weights (HashedNets, Chen et al. 2015): W[o, i] = sign(o, i) * bucket[h(o, i)].

One definition serves the trainer (train.constraints.Hash), the share_weights pass and the C backend
(backends/c/hash_weights.py; kernels/ref/ec_fully_connected_s8h.c computes the same hash on the fly, so
only the buckets are stored). The weight is a FULLY_CONNECTED's [out O][in I] matrix.

Hash: murmur3's 32-bit finalizer (fmix32) of key XOR salt, salt = fmix32(seed XOR 0x9E3779B9); a bucket
is taken from its high bits by Lemire's multiply-shift range reduction, (h * n) >> 32, and the sign from
its lowest bit (1: negative) -- nearly independent bits of a well-mixed word. All arithmetic is uint32
(uint64 for the product), identical in numpy and C.

Levels (`level`), for B buckets in total:
  tensor  key = o * I + i; bucket = range(h, B): any weight may share with any other
  row     key = o * I + i; bucket = o * (B / O) + range(h, B / O): each row has its own B / O buckets
  block   blocks of `block` consecutive weights of a row share a hash: key = o * ceil(I / block) + i / block,
          bucket = range(h, B / block) * block + i % block, one sign per block: the kernel hashes once per
          block and reads the bucket values in order
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import EdgecError

LEVELS = ("tensor", "row", "block")
GOLDEN = 0x9E3779B9
M32 = 0xFFFFFFFF


def fmix32(x) -> np.ndarray:
    """murmur3's finalizer on uint32 values (numpy, vectorised; wraps like C's uint32_t)."""
    x = np.asarray(x, np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & M32
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & M32
    x ^= x >> np.uint64(16)
    return x


def salt_of(seed: int) -> int:
    return int(fmix32(np.uint64((int(seed) ^ GOLDEN) & M32)))


@dataclass(frozen=True)
class HashSpec:
    """B = `buckets` in total (a multiple of O for row, of `block` for block), the level and the seed."""
    buckets: int
    level: str = "tensor"
    block: int = 1
    seed: int = 0

    @staticmethod
    def for_budget(shape, ratio: float, level: str = "tensor", block: int = 4, seed: int = 0) -> "HashSpec":
        """The spec storing about size / ratio buckets for an [O, I] weight (at least one per row / block)."""
        o, i = (int(d) for d in shape)
        if level not in LEVELS:
            raise EdgecError(f"hash level {level!r}: choose one of {', '.join(LEVELS)}")
        if level == "row":
            return HashSpec(o * max(1, math.ceil(i / ratio)), "row", 1, seed)
        if level == "block":
            blocks = o * math.ceil(i / block)
            return HashSpec(block * max(1, math.ceil(blocks / ratio)), "block", int(block), seed)
        return HashSpec(max(1, math.ceil(o * i / ratio)), "tensor", 1, seed)

    def as_dict(self) -> dict:
        return {"buckets": self.buckets, "level": self.level, "block": self.block, "seed": self.seed}

    @staticmethod
    def from_dict(d: dict) -> "HashSpec":
        return HashSpec(int(d["buckets"]), str(d["level"]), int(d.get("block", 1)), int(d.get("seed", 0)))

    def check(self, shape) -> None:
        o, i = (int(d) for d in shape)
        if self.level not in LEVELS:
            raise EdgecError(f"hash level {self.level!r}: choose one of {', '.join(LEVELS)}")
        if self.buckets < 1 or (self.level == "row" and self.buckets % o) or \
                (self.level == "block" and (self.block < 1 or self.buckets % self.block)):
            raise EdgecError(f"hash: {self.buckets} buckets do not fit the {self.level} level of a {o}x{i} weight")

    def index(self, shape) -> tuple[np.ndarray, np.ndarray]:
        """(bucket index int64 [O, I], sign int8 [O, I] of +-1) of every weight."""
        self.check(shape)
        o, i = (int(d) for d in shape)
        salt = np.uint64(salt_of(self.seed))
        rows = np.arange(o, dtype=np.uint64)[:, None]
        cols = np.arange(i, dtype=np.uint64)[None, :]
        if self.level == "block":
            nb = np.uint64(math.ceil(i / self.block))
            h = fmix32(((rows * nb + cols // np.uint64(self.block)) & M32) ^ salt)
            n = np.uint64(self.buckets // self.block)
            idx = ((h * n) >> np.uint64(32)) * np.uint64(self.block) + cols % np.uint64(self.block)
        else:
            h = fmix32(((rows * np.uint64(i) + cols) & M32) ^ salt)
            if self.level == "row":
                per = np.uint64(self.buckets // o)
                idx = rows * per + ((h * per) >> np.uint64(32))
            else:
                idx = (h * np.uint64(self.buckets)) >> np.uint64(32)
        sign = np.where(h & np.uint64(1), -1, 1).astype(np.int8)
        return idx.astype(np.int64), sign

    def expand(self, buckets: np.ndarray, shape) -> np.ndarray:
        """W = sign * buckets[index], in the buckets' dtype."""
        idx, sign = self.index(shape)
        b = np.asarray(buckets)
        return (b[idx] * sign).astype(b.dtype)

    def project(self, w: np.ndarray) -> np.ndarray:
        """The least-squares buckets for the weight w (float64): each the mean of sign * w over its
        members (0 for a bucket nothing maps to)."""
        idx, sign = self.index(w.shape)
        n = np.bincount(idx.reshape(-1), minlength=self.buckets)
        s = np.bincount(idx.reshape(-1), weights=(sign * np.asarray(w, np.float64)).reshape(-1), minlength=self.buckets)
        return np.where(n > 0, s / np.maximum(n, 1), 0.0)

    def collect(self, w: np.ndarray) -> np.ndarray | None:
        """The buckets an (integer) weight w was expanded from, or None when w is not sign * buckets[h]
        (some bucket's members disagree). Buckets no weight maps to are 0."""
        idx, sign = self.index(w.shape)
        v = np.asarray(w, np.int64) * sign
        b = np.zeros(self.buckets, np.int64)
        b[idx.reshape(-1)] = v.reshape(-1)
        if not np.array_equal(b[idx], v):
            return None
        return b


def parse_hash_level(text: str) -> tuple[str, int]:
    """"tensor", "row" or "blockN" (e.g. block4) as (level, block size)."""
    t = str(text).strip().lower()
    if t in ("tensor", "row"):
        return t, 1
    if t.startswith("block") and t[5:].isdigit() and int(t[5:]) >= 1:
        return "block", int(t[5:])
    raise EdgecError(f"hash level {text!r}: choose tensor, row or blockN (N >= 1 weights per block, e.g. block4)")
