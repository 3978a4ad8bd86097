"""Tests that need an external tool skip without it, and fail instead when EDGEC_REQUIRE_TOOLCHAINS=1
(CI), so a missing install can never pass silently."""
import os
import shutil

import pytest

REQUIRE = os.environ.get("EDGEC_REQUIRE_TOOLCHAINS") == "1"


def require(ok: bool, what: str) -> None:
    """Skip (fail under EDGEC_REQUIRE_TOOLCHAINS=1) unless `ok`; `what` names what is missing."""
    if not ok:
        if REQUIRE:
            pytest.fail(f"{what} required (EDGEC_REQUIRE_TOOLCHAINS=1) but missing")
        pytest.skip(f"{what} not installed")


def need(*tools: str, emulator: bool = False) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if emulator:
        from edgec.run.emulate import available
        missing += [] if available() else ["unicorn/pyelftools"]
    require(not missing, ", ".join(missing))
