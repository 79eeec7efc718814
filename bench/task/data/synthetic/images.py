"""The synthetic world's product photos: a picture shows colour (fill), pattern, shape
(silhouette) and finish, and each item has 1-2 further views of the same object."""

from __future__ import annotations

import random
from math import cos, pi, sin

from PIL import Image, ImageDraw

from bench.task.data.synthetic.items import Product

# The fill colour that pictures use for each canonical colour.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (200, 30, 40),
    "pink": (240, 125, 170),
    "orange": (240, 130, 20),
    "yellow": (245, 215, 40),
    "green": (40, 150, 60),
    "teal": (0, 128, 128),
    "blue": (30, 70, 200),
    "purple": (120, 50, 160),
    "black": (22, 22, 22),
    "white": (248, 248, 248),
    "brown": (120, 70, 30),
    "grey": (128, 128, 128),
}

# Each item's photos, as the release's ``images``: "front" (the harness's ``{ASIN}_0.jpg``)
# then 1-2 other renderings of the same object, with the sentence that photo's LLaVA
# description adds. No sentence may name a lexicon phrase (a test checks this).
VIEWS: dict[str, str] = {
    "front": "This is the main product photo, on a light background.",
    "close-up": "This photo is a close-up of the product, cropped around its middle.",
    "tilted": "In this photo the product is tilted at an angle.",
    "distant": "This photo shows the product from further away, with more background around it.",
    "backdrop": "This photo shows the product on a darker backdrop.",
}


def _shape_polygon(shape: str, box: tuple[float, float, float, float]) -> list[tuple[float, float]]:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if shape == "triangle":
        return [(x0 + w / 2, y0), (x1, y1), (x0, y1)]
    if shape == "heart":
        # Two lobes and a point, traced as a polygon so it renders at any size.
        pts: list[tuple[float, float]] = []
        steps = 24
        for k in range(steps + 1):
            t = 2 * pi * k / steps
            hx = 16 * sin(t) ** 3
            hy = 13 * cos(t) - 5 * cos(2 * t) - 2 * cos(3 * t) - cos(4 * t)
            pts.append((x0 + w * (hx + 17) / 34, y0 + h * (1 - (hy + 17) / 30)))
        return pts
    return [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]


def _object_box(shape: str, w: int, h: int) -> tuple[float, float, float, float]:
    """The object's bounding box: centred, with proportions that show the shape."""
    avail_w, avail_h = w * 0.84, h * 0.84
    ratio = {"tall": 0.45, "wide": 2.2}.get(shape, 1.0)  # width / height
    ow = min(avail_w, avail_h * ratio)
    oh = ow / ratio
    cx, cy = w / 2, h / 2
    return (cx - ow / 2, cy - oh / 2, cx + ow / 2, cy + oh / 2)


def _draw_pattern(
    draw: ImageDraw.ImageDraw,
    pattern: str,
    box: tuple[float, float, float, float],
    ink: tuple[int, int, int],
    rng: random.Random,
) -> None:
    x0, y0, x1, y1 = box
    size = max(4.0, min(x1 - x0, y1 - y0))
    step = max(3.0, size / rng.choice((4.0, 5.0, 6.0)))
    width = max(1, round(step / 3))
    if pattern == "stripes":
        x = x0 + rng.random() * step
        while x < x1:
            draw.rectangle((x, y0, x + step / 2 - 1, y1), fill=ink)
            x += step
    elif pattern == "dots":
        r = max(1.0, step / 4)
        y = y0 + step / 2
        row = 0
        while y < y1:
            x = x0 + step / 2 + (step / 2 if row % 2 else 0)
            while x < x1:
                draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
                x += step
            y += step
            row += 1
    elif pattern == "checks":
        row, y = 0, y0
        while y < y1:
            col, x = 0, x0
            while x < x1:
                if (row + col) % 2 == 0:
                    draw.rectangle((x, y, x + step - 1, y + step - 1), fill=ink)
                x += step
                col += 1
            y += step
            row += 1
    elif pattern == "zigzag":
        y = y0 + step / 2
        while y < y1 + step:
            pts = []
            x, up = x0 - step, True
            while x < x1 + step:
                pts.append((x, y - step / 3 if up else y + step / 3))
                x += step / 2
                up = not up
            draw.line(pts, fill=ink, width=width)
            y += step
    elif pattern == "argyle":
        # Separate upright diamonds, so the print cannot be mistaken for zigzag rows.
        hx, hy = step * 0.3, step * 0.45
        row, y = 0, y0 + step / 2
        while y < y1 + step:
            x = x0 + step / 2 + (step / 2 if row % 2 else 0)
            while x < x1 + step:
                draw.polygon([(x, y - hy), (x + hx, y), (x, y + hy), (x - hx, y)], fill=ink)
                x += step
            y += step
            row += 1


def render(item: Product, seed: int, background: tuple[int, int, int] | None = None
            ) -> Image.Image:
    """A product picture that shows colour (fill), pattern, shape (silhouette) and finish."""
    rng = random.Random(f"{seed}:image:{item.asin}")
    w, h = item.width, item.height
    bg = tuple(220 + rng.randint(0, 15) for _ in range(3))  # drawn even when overridden
    bg = background or bg
    fill = COLOUR_RGB[item.attrs["colour"]]
    luminance = 0.3 * fill[0] + 0.59 * fill[1] + 0.11 * fill[2]
    ink = (250, 250, 250) if luminance < 150 else (45, 45, 45)
    shape = item.attrs["shape"]
    box = _object_box(shape, w, h)

    texture = Image.new("RGB", (w, h), fill)
    tdraw = ImageDraw.Draw(texture)
    if item.attrs["pattern"] != "solid":
        _draw_pattern(tdraw, item.attrs["pattern"], box, ink, rng)
    finish = item.attrs["finish"]
    if finish == "glossy":
        x0, y0, x1, y1 = box
        highlight = Image.new("L", (w, h), 0)
        ImageDraw.Draw(highlight).ellipse(
            (
                x0 + (x1 - x0) * 0.12,
                y0 + (y1 - y0) * 0.08,
                x0 + (x1 - x0) * 0.45,
                y0 + (y1 - y0) * 0.35,
            ),
            fill=170,
        )
        texture.paste((255, 255, 255), mask=highlight)
    elif finish == "glitter":
        x0, y0, x1, y1 = box
        dot = 1 if min(w, h) < 96 else 2
        # Bright sparkles on dark fills, gold/silver ones that stay visible on light fills.
        if luminance >= 150:
            sparkles = ((185, 145, 20), (110, 110, 135))
        else:
            sparkles = ((255, 255, 255), (255, 236, 150))
        for _ in range(int((x1 - x0) * (y1 - y0) / 14)):
            px, py = int(rng.uniform(x0, x1)), int(rng.uniform(y0, y1))
            sparkle = rng.choice(sparkles)
            tdraw.rectangle((px, py, px + dot - 1, py + dot - 1), fill=sparkle)

    mask = Image.new("L", (w, h), 0)
    mdraw = ImageDraw.Draw(mask)
    image = Image.new("RGB", (w, h), bg)
    outline = (70, 70, 70)
    line = max(1, min(w, h) // 64)
    if shape == "round":
        mdraw.ellipse(box, fill=255)
        image.paste(texture, mask=mask)
        ImageDraw.Draw(image).ellipse(box, outline=outline, width=line)
    else:
        poly = _shape_polygon(shape, box)
        mdraw.polygon(poly, fill=255)
        image.paste(texture, mask=mask)
        ImageDraw.Draw(image).line([*poly, poly[0]], fill=outline, width=line)
    return image


def view_names(asin: str, seed: int) -> list[str]:
    """The item's photos in ``images`` order, from an RNG of their own (no other stream moves)."""
    rng = random.Random(f"{seed}:views:{asin}")
    return ["front", *rng.sample(sorted(set(VIEWS) - {"front"}), rng.randint(1, 2))]


def view_description(item: Product, view: str) -> str:
    return f"{item.description} {VIEWS[view]}"


def photo(item: Product, seed: int, view: str, front: Image.Image) -> Image.Image:
    """Photo ``view`` of ``item``: ``front`` (its :func:`render`) moved, scaled or re-lit."""
    rng = random.Random(f"{seed}:view:{item.asin}:{view}")
    w, h = front.size
    bg = front.getpixel((0, 0))
    if view == "backdrop":
        return render(item, seed, background=(rng.randint(150, 185),) * 3)
    if view == "close-up":
        return front.crop((w // 10, h // 10, w - w // 10, h - h // 10)).resize((w, h))
    if view == "tilted":
        angle = rng.choice((-1, 1)) * rng.uniform(12, 25)
        return front.rotate(angle, resample=Image.Resampling.BICUBIC, fillcolor=bg)
    if view == "distant":
        small = front.resize((max(1, w * 2 // 3), max(1, h * 2 // 3)))
        canvas = Image.new("RGB", (w, h), bg)
        canvas.paste(small, ((w - small.width) // 2, (h - small.height) // 2))
        return canvas
    return front
