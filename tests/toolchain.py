"""Tests that need an external tool skip without it, and fail instead when EDGEC_REQUIRE_TOOLCHAINS=1
(CI), so a missing install can never pass silently."""
import os
import shutil

import pytest

REQUIRE = os.environ.get("EDGEC_REQUIRE_TOOLCHAINS") == "1"


def need(*tools: str, emulator: bool = False) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if emulator:
        from edgec.run.emulate import available
        missing += [] if available() else ["unicorn/pyelftools"]
    if missing:
        if REQUIRE:
            pytest.fail(f"{', '.join(missing)} required (EDGEC_REQUIRE_TOOLCHAINS=1) but missing")
        pytest.skip(f"{', '.join(missing)} not installed")
