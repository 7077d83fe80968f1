"""Token maps as pictures, drawn with Pillow.

A panel shows the patch grid of one image after one block: every patch is
filled with the colour of the token it ended in, borders are drawn where
neighbouring patches belong to different tokens, and pruned patches are
grey.  Two fills:
- "mean" (ToMe's visualisation): a token's colour is the mean colour of the
  image pixels it stands for.  Groups of similar colour can look alike, and a
  group whose mean is exactly PRUNED_GREY or BORDER (black) cannot be told
  apart.
- "palette": a distinct saturated colour per token, never grey, black or white, so
  every group is unambiguous (best for grayscale images).
Colours only depend on the picture and the grouping (groups are numbered by
their first patch in row-major order), so a given map always looks the same.
"""
import colorsys
import math

import numpy as np
from PIL import Image, ImageDraw

from ..fonts import font
from .trace import PRUNED

PRUNED_GREY = (128, 128, 128)
BORDER = (0, 0, 0)
BACKGROUND = (255, 255, 255)
TEXT = (0, 0, 0)
FILLS = ("mean", "palette")
GOLDEN = 0.618033988749895
MARGIN = 8


def palette(count):
    """`count` distinct saturated RGB colours: hues spread by the golden ratio,
    alternating saturation and brightness so neighbours in the list differ."""
    colours, seen, k = [], set(), 0
    while len(colours) < count:
        hue = (k * GOLDEN) % 1.0
        saturation, value = (0.85, 0.9) if k % 2 == 0 else (0.55, 0.7)
        rgb = tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(hue, saturation, value))
        if rgb not in seen:
            seen.add(rgb)
            colours.append(rgb)
        k += 1
    return colours


def groups_in_order(labels):
    """Token labels of the non-pruned patches, in order of their first patch (row-major)."""
    flat = labels.ravel()
    _, first = np.unique(flat, return_index=True)
    return [int(flat[i]) for i in sorted(first) if flat[i] != PRUNED]


def group_colours(labels, image, patch, fill):
    """label -> RGB for every token covering a patch.

    labels [gh, gw]; image uint8 [gh*patch, gw*patch, 3]."""
    if fill not in FILLS:
        raise ValueError("fill must be one of %s, got %r" % (", ".join(FILLS), fill))
    groups = groups_in_order(labels)
    if fill == "palette":
        return dict(zip(groups, palette(len(groups))))
    gh, gw = labels.shape
    patch_means = image.reshape(gh, patch, gw, patch, 3).astype(np.float64).mean(axis=(1, 3))
    return {g: tuple(int(v) for v in np.rint(patch_means[labels == g].mean(axis=0))) for g in groups}


def input_panel(image, scale):
    """The model's input image [H, W, 3] uint8, enlarged `scale` times (nearest)."""
    height, width = image.shape[:2]
    return Image.fromarray(image).resize((width * scale, height * scale), Image.NEAREST)


def token_panel(image, labels, patch, scale, fill):
    """One token map: image [H, W, 3] uint8, labels [gh, gw] -> an RGB picture of
    (gw * cell) x (gh * cell) pixels, cell = patch * scale.  A border pixel line
    is the first pixel row/column of a patch whose upper/left neighbour belongs
    to another token."""
    gh, gw = labels.shape
    cell = patch * scale
    colours = group_colours(labels, image, patch, fill)
    panel = Image.new("RGB", (gw * cell, gh * cell))
    draw = ImageDraw.Draw(panel)
    for (row, col), label in np.ndenumerate(labels):
        colour = PRUNED_GREY if label == PRUNED else colours[label]
        draw.rectangle([col * cell, row * cell, (col + 1) * cell - 1, (row + 1) * cell - 1], fill=colour)
    for (row, col), label in np.ndenumerate(labels):
        left, top = col * cell, row * cell
        if col > 0 and labels[row, col - 1] != label:
            draw.line([(left, top), (left, top + cell - 1)], fill=BORDER)
        if row > 0 and labels[row - 1, col] != label:
            draw.line([(left, top), (left + cell - 1, top)], fill=BORDER)
    return panel


def wrap(text, typeface, width):
    """Greedy word wrap of `text` to lines no wider than `width` pixels (where words allow)."""
    lines = []
    for paragraph in text.split("\n"):
        words = paragraph.split()
        line = ""
        for word in words:
            candidate = (line + " " + word).strip()
            if line and typeface.getlength(candidate) > width:
                lines.append(line)
                line = word
            else:
                line = candidate
        lines.append(line)
    return lines


def compose(panels, captions, title="", columns=7, font_size=13):
    """Lay panels out in rows of at most `columns`, each with its caption lines
    below, and the wrapped `title` on top.  All panels must have the same size."""
    if columns < 1:
        raise ValueError("columns must be >= 1, got %r" % columns)
    if not panels or len(panels) != len(captions):
        raise ValueError("compose needs one caption per panel, got %d panels and %d captions"
                         % (len(panels), len(captions)))
    width, height = panels[0].size
    typeface = font(font_size)
    line_height = int(math.ceil(font_size * 1.35))
    caption_lines = max(len(c) for c in captions)
    columns = min(columns, len(panels))
    rows = int(math.ceil(len(panels) / columns))
    figure_width = columns * width + (columns + 1) * MARGIN
    title_lines = wrap(title, typeface, figure_width - 2 * MARGIN) if title else []
    tile_height = height + caption_lines * line_height + MARGIN
    top = MARGIN + len(title_lines) * line_height
    figure = Image.new("RGB", (figure_width, top + rows * tile_height + MARGIN), BACKGROUND)
    draw = ImageDraw.Draw(figure)
    for i, line in enumerate(title_lines):
        draw.text((MARGIN, MARGIN + i * line_height), line, fill=TEXT, font=typeface)
    for i, (panel, caption) in enumerate(zip(panels, captions)):
        if panel.size != (width, height):
            raise ValueError("panel %d is %s, the first panel is %s" % (i, panel.size, (width, height)))
        x = MARGIN + (i % columns) * (width + MARGIN)
        y = top + (i // columns) * tile_height
        figure.paste(panel, (x, y))
        for j, line in enumerate(caption):
            draw.text((x, y + height + 2 + j * line_height), line, fill=TEXT, font=typeface)
    return figure
