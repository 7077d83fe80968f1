"""The one typeface the pictures use (token maps, sweep plots)."""
from PIL import ImageFont


def font(size):
    """Pillow's built-in font at `size` px (a fixed small bitmap font on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:
        return ImageFont.load_default()
