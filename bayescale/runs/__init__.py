"""Runs tables: reading, checking and canonical units (the first stage of the flow)."""
