"""Scaling laws: one functional form per law, its parameters, priors and closed forms."""
