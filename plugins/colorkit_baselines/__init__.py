"""colorkit_baselines: the paper's baselines as colorkit plugins: conditional VAE (cvae) and pix2pix cGAN (cgan)."""
