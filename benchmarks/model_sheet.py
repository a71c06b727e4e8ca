"""A picture of trained models side by side on photos they never saw: for each of N
photos spread over a folder, one row per model (grey | k colorizations | ground truth).

    python benchmarks/model_sheet.py --test-dataset FOLDER --model old=RUN_A --model new=RUN_B \\
        [--n 6] [--k 5] --out sheet.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from colorkit.data import prepare
from colorkit.eval.bench import sample_sheet
from colorkit.inference import load


class _Subset:
    """The photos at ``positions`` of a split, as the sheet reads them."""

    def __init__(self, split, positions: list[int]) -> None:
        self.split, self.positions = split, positions

    def __len__(self) -> int:
        return len(self.positions)

    def batch(self, idx):
        return self.split.batch([self.positions[i] for i in idx])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--test-dataset", required=True)
    ap.add_argument("--model", action="append", required=True, help="LABEL=RUN_DIR (repeatable)")
    ap.add_argument("--n", type=int, default=6)
    ap.add_argument("--k", type=int, default=5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    split = prepare(a.test_dataset, test_size=0, progress=False).split("train")
    step = max(1, len(split) // a.n)
    test = _Subset(split, [i * step for i in range(min(a.n, len(split)))])
    grey = test.batch(list(range(len(test))))["grey"]
    sheet = {}
    for spec in a.model:
        label, _, run = spec.partition("=")
        sheet[label] = load(run, device="cpu").sample(grey, a.k, seed=0)
    sample_sheet(sheet, test, Path(a.out), k=a.k)
    print(f"wrote {a.out}: {len(test)} photos x {len(sheet)} models")


if __name__ == "__main__":
    with torch.no_grad():
        main()
