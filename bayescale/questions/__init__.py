"""Questions asked of a fit: predictions, overfitting, compute-optimal allocation, comparisons, backtests, learning curves, experiment design."""
