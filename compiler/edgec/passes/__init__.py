"""Graph-to-graph passes. See manager.py for the registry, recipes and the traversal driver.

Importing this package registers every pass module in it (as importing edgec.ir.ops fills the op
registry), so PASSES is complete for anyone who can see it."""
from .manager import PASSES, Pipeline, PassContext, Step, load_passes, load_recipe, register_pass, rewrite_ops

load_passes()

__all__ = ["PASSES", "Pipeline", "PassContext", "Step", "load_recipe", "register_pass", "rewrite_ops"]
