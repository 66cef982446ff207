"""Questions asked of a fit: predictions, overfitting, allocation, backtests, design, curves."""
