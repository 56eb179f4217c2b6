"""Metrics against ground truth and threshold rules."""
