"""The one IR every frontend produces and every pass and backend consumes."""
from .graph import Graph, Op, structurally_equal
from .tensor import QuantParams, Tensor
from .verify import VerifyError, verify

__all__ = ["Graph", "Op", "Tensor", "QuantParams", "structurally_equal", "verify", "VerifyError"]
