"""Evaluation: the benchmark (``colorkit bench``) and the decoder-loss ablation."""
