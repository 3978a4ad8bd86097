"""Tensors and their quantization parameters: the values an IR graph carries."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# IR dtypes are numpy dtype names; the TFLite backend maps them to TensorType.
DTYPES = ("float32", "float16", "int8", "uint8", "int16", "int32", "int64", "bool")


@dataclass
class QuantParams:
    """real = scale * (q - zero_point), per tensor (axis None) or per slice along `axis`.

    `bits` is the stored width (8 for int8; 4, 2 ... for sub-byte weights that are kept in an
    int8 container in the IR); `scheme` names how the levels were chosen (uniform, pow2, codebook).
    """
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int | None = None
    bits: int = 8
    scheme: str = "uniform"

    def __post_init__(self):
        self.scale = np.atleast_1d(np.asarray(self.scale, np.float32))
        self.zero_point = np.atleast_1d(np.asarray(self.zero_point, np.int64))
        if self.zero_point.size == 1 and self.scale.size > 1:
            self.zero_point = np.full(self.scale.shape, int(self.zero_point[0]), np.int64)

    @property
    def per_channel(self) -> bool:
        return self.axis is not None and self.scale.size > 1

    def broadcast(self, ndim: int):
        """scale and zero point shaped to broadcast against a tensor of `ndim` dims."""
        if not self.per_channel:
            return self.scale[0], self.zero_point[0]
        shape = [1] * ndim
        shape[self.axis] = -1
        return self.scale.reshape(shape), self.zero_point.reshape(shape)

    def quantize(self, x: np.ndarray, dtype: str) -> np.ndarray:
        """round(x / scale) + zero_point, saturated; float32 division and half-away-from-zero
        rounding, as TFLite's QUANTIZE kernel does."""
        from .quant import round_half_away
        info = np.iinfo(dtype)
        s, z = self.broadcast(np.ndim(x))
        q = round_half_away(np.asarray(x, np.float32) / np.float32(s) if np.ndim(s) == 0
                            else np.asarray(x, np.float32) / s.astype(np.float32)) + z
        return np.clip(q, info.min, info.max).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self.broadcast(np.ndim(q))
        return ((np.asarray(q, np.int64) - z) * s).astype(np.float32)

    def same_as(self, other: "QuantParams | None") -> bool:
        return (other is not None and self.axis == other.axis and self.bits == other.bits
                and self.scheme == other.scheme and np.array_equal(self.scale, other.scale)
                and np.array_equal(self.zero_point, other.zero_point))


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    data: np.ndarray | None = None       # set for constants (weights, biases, shape operands)
    quant: QuantParams | None = None
    meta: dict = field(default_factory=dict)  # pass-owned facts, e.g. {"sparsity": 0.9}

    def __post_init__(self):
        self.shape = tuple(int(d) for d in self.shape)
        if self.dtype not in DTYPES:
            raise ValueError(f"tensor {self.name!r}: unsupported dtype {self.dtype}")

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes as stored: sub-byte weights count at their bit width, plus one byte per group
        multiplier of a group-quantized weight (meta["group_mult"], docs/quantization.md)."""
        bits = self.quant.bits if self.quant is not None else np.dtype(self.dtype).itemsize * 8
        mult = self.meta.get("group_mult")
        return (self.size * bits + 7) // 8 + (int(np.size(mult)) if mult is not None else 0)
