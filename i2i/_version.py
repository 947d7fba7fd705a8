"""The version of i2i, in a module of its own so that modules inside the package (the run folder's
config.json records it) read it without importing the package's ``__init__``, which imports the API."""

__version__ = "0.1.0"
