"""colorkit_paper: the method of Deshpande et al. (CVPR 2017) as colorkit plugins: VAE embedder,
decoder losses, grey-feature backbones, MDN."""
