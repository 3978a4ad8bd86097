"""Capture what native libraries (TensorFlow, LiteRT, TFLM) print on file descriptors 1 and 2,
which Python's sys.stdout/sys.stderr redirection cannot reach."""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
import warnings


@contextlib.contextmanager
def captured_native_output():
    """Redirect fds 1 and 2 to a temporary file for the block; yields a function returning the text."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)

        def text() -> str:
            sys.stdout.flush()
            sys.stderr.flush()
            tmp.seek(0)
            return tmp.read().decode(errors="replace")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
