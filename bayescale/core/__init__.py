"""Foundations of every stage: errors, dims, argument checks, priors, statistics, file writes."""
