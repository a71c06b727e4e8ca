"""The paper's building blocks (``C_a(k, s, n)``, ``B``, ``U(f)``, TF ``SAME`` padding):
defined once in :mod:`colorkit.core.layers`, shared with the baselines, and importable from here."""

from colorkit.core.layers import ConvBlock, SameConv2d, grey_at_size, is_power_of_two, same_padding, up2

__all__ = ["ConvBlock", "SameConv2d", "grey_at_size", "is_power_of_two", "same_padding", "up2"]
