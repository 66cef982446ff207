"""Figures: every plot_x has a partner returning the data it draws."""
