"""A generated data set for the benchmarks: ``n`` smooth colour images of ``side`` pixels,
made from a seed (no files needed), prepared through the ordinary ``prepare`` path."""

from __future__ import annotations

from colorkit.data import Record, Source, prepare
from colorkit.testing.archives import colour_image


class SyntheticSource(Source):
    def __init__(self, n: int, side: int = 64, seed: int = 0) -> None:
        self.n, self.side, self.seed = n, side, seed
        self.name = self.location = f"bench-synthetic:n={n},side={side},seed={seed}"

    def fingerprint(self) -> str:
        return f"bench-synthetic-v1:{self.n}:{self.side}:{self.seed}"

    def size_hint(self) -> int:
        return self.n

    def records(self, start: int = 0):
        for i in range(start, self.n):
            yield Record(f"{i:07d}", image=colour_image(i, (self.side, self.side), self.seed))


def synthetic_dataset(n: int, cache_dir, side: int = 64, size: int = 64, seed: int = 0):
    return prepare(SyntheticSource(n, side, seed), size=size, cache_dir=cache_dir, progress=False)
