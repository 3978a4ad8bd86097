"""edgec.train: train an IR graph in TensorFlow, with constraints, and write the weights back.

    from edgec.train import build_model, fit, export, quantize_weights, WeightQuant
    model = build_model(graph, constraints={**quantize_weights(graph, bits=2, scheme="ternary")})
    history = fit(model, train_ds, loss="crossentropy", epochs=10, val=val_ds, early_stopping=3)
    trained = export(model, snap=True)      # a Graph; weights fake-quantized, meta["qat_scale"] set

Every op lowers through its registry entry `OpDef.tf` (ir/ops/<family>.py). Constraints map tensor
names to WeightQuant / ActQuant / Prune / Cluster (or lists of them, applied in order). TensorFlow is
imported lazily: importing this package does not import it.
"""
from .constraints import ActQuant, Cluster, Prune, WeightQuant, grid_round  # noqa: F401
from .fit import accuracy, fit, make_loss  # noqa: F401
from .model import (TrainableGraph, build_model, export, quantize_activations, quantize_weights,  # noqa: F401
                    trainable_constants, weight_layout)
