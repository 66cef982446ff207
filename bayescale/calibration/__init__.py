"""Simulation-based calibration of the models."""
