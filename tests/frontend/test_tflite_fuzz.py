"""The .tflite importer survives mutated real models: every mutation either imports to a graph
that verifies (the importer runs verify) or raises EdgecError; nothing else escapes."""
import numpy as np

from edgec.backends.tflite import write_tflite
from edgec.errors import EdgecError
from edgec.frontend.tflite import import_tflite
from edgec.ir import verify
from graphs import small_cnn


def test_fuzz_mutated_models():
    real = write_tflite(small_cnn())
    rng = np.random.default_rng(1234)
    outcomes = {"ok": 0, "refused": 0}
    for trial in range(400):
        data = bytearray(real)
        kind = trial % 4
        if kind == 0:      # flip random bytes
            for pos in rng.integers(0, len(data), rng.integers(1, 8)):
                data[pos] ^= int(rng.integers(1, 256))
        elif kind == 1:    # truncate
            data = data[: int(rng.integers(0, len(data)))]
        elif kind == 2:    # overwrite a 4-byte word (offsets, lengths) with an extreme value
            pos = int(rng.integers(0, len(data) - 4))
            data[pos:pos + 4] = int(rng.choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x80000000])).to_bytes(4, "little")
        else:              # splice a random chunk
            a, b = sorted(rng.integers(0, len(data), 2))
            data[a:b] = rng.bytes(int(b - a))
        try:
            g = import_tflite(bytes(data), "fuzz")
        except EdgecError:
            outcomes["refused"] += 1
            continue
        verify(g)
        outcomes["ok"] += 1
    assert outcomes["ok"] + outcomes["refused"] == 400
    assert outcomes["refused"] > 100
