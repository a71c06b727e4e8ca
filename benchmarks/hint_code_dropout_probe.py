"""Probe: does ``mdn-skip``'s decoder learn to use hints when its code cannot tell it the
colours? A measurement, not part of any method.

    python benchmarks/hint_code_dropout_probe.py P -- BENCH-ARGUMENTS

In training, ``mdn-skip``'s decoder reads the grey image, the hints and a code drawn from
the encoder of the true colour field, so the code already says what the hints say and the
decoder can ignore them. This script runs ``colorkit bench BENCH-ARGUMENTS`` with the
decoder's training changed: for each training image with hints, with probability ``P``
the code is replaced by a draw from the prior N(0, I), so the decoder must colour from
the grey image and the hints alone. For example:

    python benchmarks/hint_code_dropout_probe.py 0.5 -- --methods mdn-skip --hints 0,5,10 --out OUT
"""

from __future__ import annotations

import sys

import torch
from colorkit_paper.vae import VAESkip

from colorkit.cli import main as colorkit_main


def with_code_dropout(p: float) -> None:
    """Patch :meth:`VAESkip.decode` so that in training (``self.training``) the codes of
    images with hints are replaced by prior draws with probability ``p``."""
    decode = VAESkip.decode

    def patched(self: VAESkip, z: torch.Tensor, grey: torch.Tensor | None = None,
                hint_feats: torch.Tensor | None = None) -> torch.Tensor:
        if self.training and hint_feats is not None:
            hinted = hint_feats[:, -3].flatten(1).amax(1) > 0  # the hint map's mask channel
            drop = (torch.rand(z.shape[0], device=z.device) < p) & hinted
            z = torch.where(drop[:, None], torch.randn_like(z), z)
        return decode(self, z, grey, hint_feats)

    VAESkip.decode = patched


if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[2] != "--":
        sys.exit("usage: hint_code_dropout_probe.py P -- BENCH-ARGUMENTS")
    with_code_dropout(float(sys.argv[1]))
    colorkit_main(["bench", *sys.argv[3:]])
