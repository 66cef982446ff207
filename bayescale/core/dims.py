"""Names of the dimensions of every result: one home, so no two modules spell them apart.

``run`` is the row dimension of a runs table (one row per run, or per logged checkpoint of a
learning curve), ``chain`` and ``draw`` index posterior draws, and ``point`` the inputs a
question is asked at (predictions, data needed, compute budgets). Group dimensions are named
after their group column.
"""

from __future__ import annotations

__all__ = ["CHAIN", "DRAW", "POINT", "RUN", "SAMPLE_DIMS"]

RUN = "run"
CHAIN = "chain"
DRAW = "draw"
POINT = "point"
#: The dims of posterior draws, in ArviZ's order.
SAMPLE_DIMS = (CHAIN, DRAW)
