"""Foundations every stage uses: errors, dimension names, argument checks, priors, NumPy statistics and atomic file writes."""
