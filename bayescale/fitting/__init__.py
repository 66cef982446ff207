"""Fitting: the pipeline, samplers, the exact path, the compiled-model cache, the Fit and its file format, batches of fits."""
