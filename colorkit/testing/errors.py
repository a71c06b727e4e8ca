"""The contract kit's failure: one exception whose message names the component and the problem."""

from __future__ import annotations


class ContractError(AssertionError):
    """A component breaks colorkit's contract; the message says how."""


def fail(what: str, msg: str) -> None:
    raise ContractError(f"{what}: {msg}")
