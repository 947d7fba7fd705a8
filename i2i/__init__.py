"""i2i: image-to-image translation (pix2pix, CycleGAN, DualGAN) on a small GAN/VAE core.

    from i2i import load
    model = load("checkpoints/facades_label2photo")
    photo = model(Image.open("labels.png"))

Nothing heavy is imported here, so ``i2i --help`` stays fast; ``load`` imports torch when called.
"""

from ._version import __version__
__all__ = ["__version__", "load", "Model"]


def load(*args, **kwargs):
    """Load a trained model for translation; see :func:`i2i.api.load`."""
    from .api import load as _load

    return _load(*args, **kwargs)


def __getattr__(name):
    if name == "Model":
        from .api import Model

        return Model
    raise AttributeError(f"module 'i2i' has no attribute {name!r}")
