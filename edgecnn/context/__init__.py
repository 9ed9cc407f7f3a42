"""Field-level context: classify each tile with the neighbours the device already sees (numpy only)."""

from edgecnn.context.patches import field_probs_of_patches
from edgecnn.context.stage import (
    STAGES,
    ContextError,
    ContextStage,
    NeighbourMean,
    RingLogistic,
    stage_from_dict,
)

__all__ = ["STAGES", "ContextError", "ContextStage", "NeighbourMean", "RingLogistic", "field_probs_of_patches",
           "stage_from_dict"]
