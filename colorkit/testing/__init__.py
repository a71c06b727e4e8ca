"""Test helpers for colorkit and its plugin authors.

* :func:`check_component` / :func:`check_method`: the contract every registered component
  meets (shapes, units, determinism under a seed, save/load round trip, registry metadata);
  raise :class:`ContractError` saying what is wrong.
* :func:`make_image_folder`, :func:`tiny_dataset`, :func:`tiny_stats`: small data made on
  the spot.
* A pytest plugin (entry point ``pytest11``) with the fixtures ``colorkit_tiny_dataset``,
  ``colorkit_tiny_stats`` and ``colorkit_contract``.
"""

from colorkit.testing.contract import check_component, check_method
from colorkit.testing.errors import ContractError
from colorkit.testing.fixtures import make_image_folder, tiny_dataset, tiny_stats

__all__ = ["ContractError", "check_component", "check_method", "make_image_folder", "tiny_dataset", "tiny_stats"]
