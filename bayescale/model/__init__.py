"""The PyMC model of a law: pooling across groups, effects, centring, start points."""
