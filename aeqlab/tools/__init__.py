"""Diagnostics over a backend: the gradient check and the plan preview."""
