"""Questions asked of a fit: predictions, overfitting, allocation, comparisons, backtests, design."""
