"""Filter and score plugins: each with a per-node form (the reference path) and a whole-fleet
numpy form (the batch path) that must agree exactly."""

from shoal.scheduler.plugins.filters import STATIC_FILTERS, StaticFilter
from shoal.scheduler.plugins.scores import DYNAMIC_SCORES, STATIC_SCORES, StaticScore

__all__ = ["DYNAMIC_SCORES", "STATIC_FILTERS", "STATIC_SCORES", "StaticFilter", "StaticScore"]
