"""Adapters for models other than MAT, behind matbench's Inpainter interface."""
