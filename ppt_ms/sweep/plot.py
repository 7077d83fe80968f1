"""Small line plots with Pillow: one curve per method, the Pareto front ringed.

(Pillow is already a dependency; matplotlib would add six packages for two
plots.)"""
import math

from PIL import Image, ImageDraw

from ..fonts import font

WIDTH, HEIGHT = 860, 480
LEFT, TOP, RIGHT, BOTTOM = 72, 40, 600, 420  # the plotting area
BACKGROUND, INK, GRID = (255, 255, 255), (0, 0, 0), (225, 225, 225)
FRONT = (255, 160, 0)
COLOURS = {"none": (60, 60, 60), "tome": (31, 119, 180), "ppt": (214, 39, 40), "prune": (44, 160, 44)}
EXTRA_COLOURS = [(148, 103, 189), (140, 86, 75), (23, 190, 207), (227, 119, 194), (188, 189, 34),
                 (255, 127, 14), (31, 60, 120), (120, 20, 20), (20, 90, 20)]
MARKER, RING = 4, 8


def nice_ticks(low, high, count=5):
    """Round tick values (steps of 1, 2 or 5 x 10^k) covering [low, high]."""
    if high <= low:
        pad = abs(low) * 0.05 or 1.0
        low, high = low - pad, high + pad
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    start, stop = math.floor(low / step) * step, math.ceil(high / step) * step
    return [round(start + i * step, 10) for i in range(int(round((stop - start) / step)) + 1)]


def put(draw, xy, words, typeface, across="l", down="t"):
    """Text placed by its left/middle/right ('l', 'm', 'r') and top/middle ('t', 'm')
    (without Pillow's anchors, which bitmap fonts do not support)."""
    left, top, right, bottom = draw.textbbox((0, 0), words, font=typeface)
    x = xy[0] - {"l": 0, "m": (right - left) / 2, "r": right - left}[across]
    y = xy[1] - {"t": 0, "m": (bottom - top) / 2}[down]
    draw.text((x - left, y - top), words, fill=INK, font=typeface)


def series_colours(names):
    """A method's own colour for the first curve of that method, then unused extra colours."""
    colours, spare = {}, list(EXTRA_COLOURS)
    for name in names:
        method = name.split()[0]
        own = COLOURS.get(method)
        if own is not None and own not in colours.values():
            colours[name] = own
        else:
            colours[name] = spare.pop(0) if spare else (128, 128, 128)
    return colours


def line_plot(series, front, x_label, y_label, title, path, scattered=(), front_label="Pareto front"):
    """Draw `series` ({name: [(x, y), ...]}, each joined in x order unless named in `scattered`)
    and ring the `front` points [(x, y), ...] (named `front_label`) on one chart; save a PNG at `path`."""
    points = [p for values in series.values() for p in values]
    if not points:
        raise ValueError("nothing to plot for %s: no measured points" % path)
    x_ticks = nice_ticks(min(p[0] for p in points), max(p[0] for p in points))
    y_ticks = nice_ticks(min(p[1] for p in points), max(p[1] for p in points))

    def at(x, y):
        u = (x - x_ticks[0]) / (x_ticks[-1] - x_ticks[0])
        v = (y - y_ticks[0]) / (y_ticks[-1] - y_ticks[0])
        return LEFT + u * (RIGHT - LEFT), BOTTOM - v * (BOTTOM - TOP)

    image = Image.new("RGB", (WIDTH, HEIGHT), BACKGROUND)
    draw = ImageDraw.Draw(image)
    text = font(13)
    for x in x_ticks:
        px = at(x, y_ticks[0])[0]
        draw.line([(px, TOP), (px, BOTTOM)], fill=GRID)
        draw.line([(px, BOTTOM), (px, BOTTOM + 5)], fill=INK)
        put(draw, (px, BOTTOM + 8), "%g" % x, text, across="m")
    for y in y_ticks:
        py = at(x_ticks[0], y)[1]
        draw.line([(LEFT, py), (RIGHT, py)], fill=GRID)
        draw.line([(LEFT - 5, py), (LEFT, py)], fill=INK)
        put(draw, (LEFT - 8, py), "%g" % y, text, across="r", down="m")
    draw.rectangle([LEFT, TOP, RIGHT, BOTTOM], outline=INK)
    put(draw, ((LEFT + RIGHT) / 2, BOTTOM + 28), x_label, text, across="m")
    put(draw, (LEFT, TOP - 26), title, text)
    label = Image.new("RGB", (int(text.getlength(y_label)) + 4, 18), BACKGROUND)
    ImageDraw.Draw(label).text((2, 1), y_label, fill=INK, font=text)
    label = label.rotate(90, expand=True)
    image.paste(label, (8, int((TOP + BOTTOM - label.size[1]) / 2)))

    ordered_front = sorted(front)
    if len(ordered_front) > 1:
        draw.line([at(*p) for p in ordered_front], fill=FRONT, width=3)
    for p in ordered_front:
        x, y = at(*p)
        draw.ellipse([x - RING, y - RING, x + RING, y + RING], outline=FRONT, width=2)
    colours = series_colours(series)
    for name, values in series.items():
        colour = colours[name]
        ordered = [at(*p) for p in sorted(values)]
        if len(ordered) > 1 and name not in scattered:
            draw.line(ordered, fill=colour, width=2)
        for x, y in ordered:
            draw.ellipse([x - MARKER, y - MARKER, x + MARKER, y + MARKER], fill=colour)

    entries = list(colours.items()) + [(front_label, None)]
    for i, (name, colour) in enumerate(entries):
        x, y = RIGHT + 20, TOP + 10 + 22 * i
        if colour is None:
            draw.ellipse([x - RING + 10, y - RING, x + RING + 10, y + RING], outline=FRONT, width=2)
        else:
            if name not in scattered:
                draw.line([(x, y), (x + 20, y)], fill=colour, width=2)
            draw.ellipse([x + 10 - MARKER, y - MARKER, x + 10 + MARKER, y + MARKER], fill=colour)
        put(draw, (x + 30, y), name, text, down="m")
    image.save(path, optimize=True)
    return path
