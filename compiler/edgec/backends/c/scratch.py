"""Scratch-buffer sizes of the C kernel variants (bytes the emitter must reserve for one call).

    scratch_bytes("ec_conv2d_s8", "cmsis", fields)   # fields: the ec_conv_s8_params_t dict the
                                                      # emitter builds (in_c, k_h, k_w, ... ; extra keys ignored)

ref kernels need none. Keep each formula in step with the kernel's header comment.
"""
from __future__ import annotations


def _round_up(n: int, m: int) -> int:
    return (n + m - 1) // m * m


def _cmsis_conv2d_s8(p: dict) -> int:
    # kernels/cmsis/ec_conv2d_s8.c: im2col of two output pixels as int16, each column padded to a
    # multiple of 4 elements (so the second column stays 8-byte aligned)
    k = int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"])
    return 2 * _round_up(k, 4) * 2


def _neon_conv2d_s8(p: dict) -> int:
    # kernels/neon/ec_conv2d_s8.c (formula from its engineer: tests/c/test_neon_kernels.py neon_scratch)
    k = int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"])
    return 16 + 32 * _round_up(int(p["out_c"]), 4) + 2 * _round_up(k, 16)


def _neon_conv2d_f32(p: dict) -> int:
    # kernels/neon/ec_conv2d_f32.c (as above)
    k = int(p["k_h"]) * int(p["k_w"]) * int(p["in_c"])
    return 16 + 16 * _round_up(int(p["out_c"]), 4) + 2 * 4 * _round_up(k, 4)


_SIZES = {
    ("cmsis", "ec_conv2d_s8"): _cmsis_conv2d_s8,
    # kernels/cmsis/ec_depthwise_conv2d_s8.c and ec_fully_connected_s8.c work in registers: 0
    ("neon", "ec_conv2d_s8"): _neon_conv2d_s8,
    ("neon", "ec_conv2d_f32"): _neon_conv2d_f32,
}


def scratch_bytes(kernel: str, variant: str, params: dict) -> int:
    """Bytes of scratch `kernel` from kernels/<variant>/ needs for one call with these params (0 if none)."""
    fn = _SIZES.get((variant, kernel))
    return int(fn(params)) if fn else 0
