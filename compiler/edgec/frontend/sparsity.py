"""TFLite's sparse tensor format (schema.fbs SparsityParameters), decoded to dense and encoded back.

A sparse tensor of dense shape (d0..dn-1), optionally split into k-dimensional blocks, is stored as
a traversal over n + k levels: `traversal_order` lists the n original dims (a permutation) and then
the k block dims (n..n+k-1); `block_map[b]` names the original dim block dim n+b splits. Level i
keeps `dim_metadata[i]`: DENSE (every index 0..dense_size-1) or SPARSE_CSR (per parent position p,
the indices array_indices[array_segments[p]:array_segments[p+1]]). A dense level's children are
numbered parent * size + i, a sparse level's by their position in array_indices. The buffer holds
the values of the leaves in traversal order. This is what tensorflow/lite/kernels/internal/utils/
sparsity_format_converter.cc implements (its Populate / DenseToSparse); the code here is
vectorised and checks every invariant so a malformed model fails with one clear line.
"""
from __future__ import annotations

import numpy as np

from ..errors import EdgecError
from ..tflite_schema import schema

DENSE = schema.DimensionType.DENSE
SPARSE_CSR = schema.DimensionType.SPARSE_CSR
_VECTOR_TYPES = {
    schema.SparseIndexVector.Int32Vector: ("Int32Vector", np.int32),
    schema.SparseIndexVector.Uint16Vector: ("Uint16Vector", np.uint16),
    schema.SparseIndexVector.Uint8Vector: ("Uint8Vector", np.uint8),
}


def _index_vector(kind: int, vec, what: str, fail) -> np.ndarray:
    if kind not in _VECTOR_TYPES or vec is None:
        fail(f"{what} is missing or has an unknown index type ({kind})")
    values = getattr(vec, "values", None)
    if values is None:
        return np.zeros(0, np.int64)
    return np.asarray(values).astype(np.int64).reshape(-1)


def decode_sparse(raw: bytes, dtype: str, shape, sparsity, name: str) -> np.ndarray:
    """The dense array a sparse TFLite tensor stores. Raises EdgecError on malformed data."""

    def fail(msg):
        raise EdgecError(f"sparse tensor {name!r}: {msg}")

    shape = [int(d) for d in shape]
    n = len(shape)
    trav = [int(v) for v in (sparsity.traversalOrder if sparsity.traversalOrder is not None else [])]
    bmap = [int(v) for v in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    dims = list(sparsity.dimMetadata or [])
    k = len(bmap)
    if n == 0:
        fail("a scalar cannot be sparse")
    if len(trav) != n + k:
        fail(f"traversal_order has {len(trav)} entries, a rank-{n} tensor with {k} block dims needs {n + k}")
    if sorted(trav[:n]) != list(range(n)) or sorted(trav[n:]) != list(range(n, n + k)):
        fail(f"traversal_order {trav} is not a permutation of the {n} dims followed by the {k} block dims")
    if len(set(bmap)) != k or any(not 0 <= d < n for d in bmap):
        fail(f"block_map {bmap} must name distinct dims of a rank-{n} tensor")
    if len(dims) != n + k:
        fail(f"dim_metadata has {len(dims)} entries, traversal_order {n + k}")

    # block sizes come from the (dense) levels that traverse the block dims
    level_of = {d: i for i, d in enumerate(trav)}
    block = {}
    for b, d in enumerate(bmap):
        dm = dims[level_of[n + b]]
        if dm.format != DENSE or dm.denseSize < 1:
            fail(f"block dim {n + b} must be DENSE with a positive size")
        if shape[d] % dm.denseSize:
            fail(f"block size {dm.denseSize} does not divide dim {d} of shape {shape}")
        block[d] = int(dm.denseSize)
    expanded = [shape[d] // block.get(d, 1) for d in range(n)] + [block[d] for d in bmap]

    itemsize = np.dtype(dtype).itemsize
    if len(raw) % itemsize:
        fail(f"buffer of {len(raw)} bytes is not a whole number of {dtype} values")
    values = np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype)

    coords: list[np.ndarray] = []
    parent = np.zeros(1, np.int64)   # the position each live node passes to the next level
    span = 1                          # the range of those positions
    for lvl, dm in enumerate(dims):
        size = expanded[trav[lvl]]
        if dm.format == DENSE:
            if dm.denseSize != size:
                fail(f"level {lvl} is DENSE of size {dm.denseSize}, the dim it traverses has {size}")
            local = np.tile(np.arange(size, dtype=np.int64), len(parent))
            coords = [np.repeat(c, size) for c in coords]
            parent = np.repeat(parent, size) * size + local
            span *= size
            coords.append(local)
        elif dm.format == SPARSE_CSR:
            seg = _index_vector(dm.arraySegmentsType, dm.arraySegments, f"level {lvl} array_segments", fail)
            idx = _index_vector(dm.arrayIndicesType, dm.arrayIndices, f"level {lvl} array_indices", fail)
            if len(seg) != span + 1:
                fail(f"level {lvl} has {len(seg)} segment offsets, its {span} parents need {span + 1}")
            if seg[0] != 0 or (np.diff(seg) < 0).any() or seg[-1] != len(idx):
                fail(f"level {lvl} segment offsets must rise from 0 to {len(idx)} (the index count)")
            if len(idx) and (idx.min() < 0 or idx.max() >= size):
                fail(f"level {lvl} indices leave [0, {size})")
            start = seg[parent]
            count = seg[parent + 1] - start
            owner = np.repeat(np.arange(len(parent)), count)
            first = np.cumsum(count) - count
            pos = np.arange(int(count.sum()), dtype=np.int64) - first[owner] + start[owner]
            coords = [c[owner] for c in coords]
            parent = pos
            span = len(idx)
            coords.append(idx[pos])
        else:
            fail(f"level {lvl} has unknown format {dm.format}")

    if len(parent) != values.size:
        fail(f"the index arrays address {len(parent)} values, the buffer holds {values.size}")
    orig = [coords[level_of[d]] for d in range(n)]
    for b, d in enumerate(bmap):
        orig[d] = orig[d] * block[d] + coords[level_of[n + b]]
    dense = np.zeros(int(np.prod(shape, dtype=np.int64)), dtype)
    if values.size:
        dense[np.ravel_multi_index(orig, shape)] = values
    return dense.reshape(shape)


def sparsity_block(sparsity, ndim: int) -> tuple[int, ...] | None:
    """The block size per dim a (valid) SparsityParameters uses, or None when not block-sparse:
    what `encode_sparse(..., block)` needs to write the same layout back."""
    bmap = [int(v) for v in (sparsity.blockMap if sparsity.blockMap is not None else [])]
    if not bmap:
        return None
    trav = [int(v) for v in sparsity.traversalOrder]
    block = [1] * ndim
    for b, d in enumerate(bmap):
        block[d] = int(sparsity.dimMetadata[trav.index(ndim + b)].denseSize)
    return tuple(block)


def _index_vector_for(values: np.ndarray):
    """The narrowest SparseIndexVector that holds `values`: (union type, vector object)."""
    top = int(values.max()) if values.size else 0
    for kind in (schema.SparseIndexVector.Uint8Vector, schema.SparseIndexVector.Uint16Vector,
                 schema.SparseIndexVector.Int32Vector):
        cls, np_type = _VECTOR_TYPES[kind]
        if top <= np.iinfo(np_type).max:
            vec = getattr(schema, cls + "T")()
            vec.values = values.astype(np_type)
            return kind, vec
    raise ValueError(f"sparse index {top} does not fit int32")


def encode_sparse(dense: np.ndarray, block=None) -> tuple[bytes, "schema.SparsityParametersT"]:
    """Encode `dense` the way TensorFlow's converter does: every original dim DENSE except the last,
    SPARSE_CSR; with `block` (one size per dim, 1 = not blocked) the blocked dims get a DENSE block
    level each, and a block is stored (zeros included) when any of its values is non-zero."""
    dense = np.asarray(dense)
    n = dense.ndim
    if n == 0:
        raise ValueError("cannot sparse-encode a scalar")
    block = tuple(int(b) for b in block) if block is not None else (1,) * n
    if len(block) != n or any(b < 1 or s % b for s, b in zip(dense.shape, block)):
        raise ValueError(f"block {block} does not tile shape {dense.shape}")
    bmap = [d for d in range(n) if block[d] != 1]
    bsize = [block[d] for d in bmap]
    blocked = [s // b for s, b in zip(dense.shape, block)]

    # [B0, b0, B1, b1, ...] -> [B0, B1, ..., b_bmap0, b_bmap1, ...]
    split = dense.reshape([v for d in range(n) for v in (blocked[d], block[d])])
    split = split.transpose([2 * d for d in range(n)] + [2 * d + 1 for d in range(n)])
    e = split.reshape(blocked + bsize)
    rows = int(np.prod(blocked[:-1], dtype=np.int64))
    cells = e.reshape(rows, blocked[-1], int(np.prod(bsize, dtype=np.int64)))
    keep = (cells != 0).any(axis=2)
    _, cols = np.nonzero(keep)
    segments = np.concatenate([[0], np.cumsum(keep.sum(axis=1))]).astype(np.int64)
    values = np.ascontiguousarray(cells[keep], dtype=dense.dtype.newbyteorder("<"))

    sp = schema.SparsityParametersT()
    sp.traversalOrder = np.arange(n + len(bmap), dtype=np.int32)
    sp.blockMap = np.array(bmap, np.int32)
    sp.dimMetadata = []
    for lvl in range(n + len(bmap)):
        dm = schema.DimensionMetadataT()
        if lvl == n - 1:
            dm.format = SPARSE_CSR
            dm.arraySegmentsType, dm.arraySegments = _index_vector_for(segments)
            dm.arrayIndicesType, dm.arrayIndices = _index_vector_for(cols.astype(np.int64))
        else:
            dm.format = DENSE
            dm.denseSize = blocked[lvl] if lvl < n else bsize[lvl - n]
        sp.dimMetadata.append(dm)
    return values.tobytes(), sp
