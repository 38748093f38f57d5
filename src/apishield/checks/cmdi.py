"""Placeholder removed by the detection work."""
