"""i2i: image-to-image translation (pix2pix, CycleGAN, DualGAN) on a small GAN/VAE core.

Nothing heavy is imported here, so ``i2i --help`` stays fast.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
