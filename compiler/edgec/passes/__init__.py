"""Graph-to-graph passes. See manager.py for the registry, recipes and the traversal driver."""
from .manager import PASSES, Pipeline, PassContext, Step, load_recipe, register_pass, rewrite_ops

__all__ = ["PASSES", "Pipeline", "PassContext", "Step", "load_recipe", "register_pass", "rewrite_ops"]
