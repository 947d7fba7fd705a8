"""Where images come in: the image loader and writer, datasets and augmentation."""
