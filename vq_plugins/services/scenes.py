"""The local renderer's animated middle scene, one per kind of doubt (see doubt_kinds):
a function plot, numbered steps, or a labelled diagram of the question's key terms.

They show what the reference Manim scenes show, drawn with Pillow. Each scene draws its
static parts once and copies them per frame; a frame that shows nothing new is the very
same image as the one before, which the encoder then reuses. Everything stays above the
band where CaptionBurner burns two lines of captions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterator
from typing import cast

from PIL import Image, ImageDraw

from vq_plugins.services.doubt_kinds import (
    DEFAULT_FUNCTION,
    SCENE_KINDS,
    TERM_CHARS,
    SceneKind,
    classify,
    key_terms,
    named_function,
    nice_step,
    shorten,
    step_lines,
)
from vq_plugins.services.drawing import (
    ACCENT,
    ACCENT2,
    BG,
    FG,
    MUTED,
    Colour,
    Font,
    Point,
    arrow,
    blend,
    dot,
    draw_lines,
    font,
    formula,
    line_step,
    wrap,
)
from vq_plugins.services.video_writer import Canvas

__all__ = ["content_bottom", "resolve_kind", "scene_frames"]

GRID = (34, 42, 60)

Frame = Callable[[float], Image.Image]


def resolve_kind(text: str, scene_type: object = None) -> SceneKind:
    """``scene_type`` when it names a kind, the kind ``text`` asks for when it is None.

    :raises ValueError: ``scene_type`` is neither None nor one of SCENE_KINDS.
    """
    if scene_type is None:
        return classify(text)
    if scene_type not in SCENE_KINDS:
        raise ValueError(f"scene_type must be one of {', '.join(SCENE_KINDS)}, got {scene_type!r}")
    return scene_type


def scene_frames(canvas: Canvas, text: str, frames: int,
                 kind: SceneKind | None = None) -> Iterator[Image.Image]:
    """``frames`` pictures of the scene of ``kind`` (None: the one ``text`` asks for)."""
    draw = _SCENES[resolve_kind(text, kind)](canvas, text)
    return (draw(i / max(1, frames - 1)) for i in range(frames))


def content_bottom(canvas: Canvas) -> float:
    """The lowest row a scene draws on: just above a two-line caption band.

    It mirrors CaptionBurner's band (a font of h/16, two lines, h/60 padding, h/40 off
    the bottom); tests/unit/test_pyav_scenes.py checks the two agree.
    """
    h = canvas.height
    band = line_step(font(max(10, h // 16))) * 2 + 2 * max(2, h // 60)
    return h - round(band) - max(2, h // 40) - max(2, h // 60)






def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))


def _memo(make: Callable[[Hashable], Image.Image]) -> Callable[[Hashable], Image.Image]:
    """``make`` remembering its last answer: equal keys in a row give the same image."""
    last: list[tuple[Hashable, Image.Image]] = []

    def get(key: Hashable) -> Image.Image:
        if not last or last[0][0] != key:
            last[:] = [(key, make(key))]
        return last[0][1]

    return get


def _header(canvas: Canvas, text: str, face: Font, fill: Colour,
            max_lines: int = 2) -> tuple[Image.Image, float]:
    """A background with ``text`` centred at the top; returns it and the text's bottom."""
    w, h = canvas.width, canvas.height
    base = Image.new("RGB", (w, h), BG)
    lines = wrap(text, face, w * 0.9, max_lines if h >= 160 else 1)
    return base, draw_lines(ImageDraw.Draw(base), lines, face, h * 0.04, fill)


def _area(canvas: Canvas, header_bottom: float) -> tuple[float, float]:
    """Top and bottom of the room under the header and above the captions."""
    top = header_bottom + canvas.height * 0.03
    return top, max(content_bottom(canvas), top + 4)


# -- plot ----------------------------------------------------------------------------------

_GROW = 0.55  # the share of the scene spent drawing the curve; then the dot runs along it




def _ticks(low: float, high: float) -> list[float]:
    step = nice_step(high - low)
    first = math.ceil(low / step)
    return [i * step for i in range(first, math.floor(high / step) + 1)]


def _plot(canvas: Canvas, text: str) -> Frame:
    """Axes, the named function's curve drawn from left to right, then a dot running
    along it from its start with its coordinates; the function's label on top."""
    spec = named_function(text) or DEFAULT_FUNCTION
    w, h = canvas.width, canvas.height
    base = Image.new("RGB", (w, h), BG)
    draw = ImageDraw.Draw(base)
    top, bottom = _area(canvas, formula(draw, spec.label, w / 2, h * 0.04, max(12, h // 12),
                                        ACCENT))
    small = font(max(9, h // 30))
    labelled = h >= 180  # tick labels and the read-out would only crowd a small frame
    width, r = max(2, h // 120), max(2, h // 45)
    # The dot must not leave the area, nor the x tick labels run into the captions.
    top, bottom = top + r, max(top + r + 2, bottom - r - (line_step(small) if labelled else 0))
    left, right = w * 0.1, w * 0.92
    (x0, x1), (y0, y1) = spec.x_range, spec.y_range

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (right - left)

    def py(y: float) -> float:
        return bottom - (min(max(y, y0), y1) - y0) / (y1 - y0) * (bottom - top)

    axis_y = py(0.0) if y0 <= 0 <= y1 else bottom
    axis_x = px(0.0) if x0 <= 0 <= x1 else left
    for x in _ticks(x0, x1):
        draw.line((px(x), top, px(x), bottom), fill=GRID, width=1)
        if labelled and abs(x) > 1e-9:
            draw.text((px(x), axis_y + 3), f"{x:g}", font=small, fill=MUTED, anchor="ma")
    for y in _ticks(y0, y1):
        draw.line((left, py(y), right, py(y)), fill=GRID, width=1)
        if labelled and abs(y) > 1e-9:
            draw.text((axis_x - 4, py(y)), f"{y:g}", font=small, fill=MUTED, anchor="rm")
    draw.line((left, axis_y, right, axis_y), fill=MUTED, width=max(1, h // 240))
    draw.line((axis_x, top, axis_x, bottom), fill=MUTED, width=max(1, h // 240))

    samples = [x0 + (x1 - x0) * i / 239 for i in range(240)]
    values = [(x, spec.func(x)) for x in samples]
    points = [(px(x), py(y)) for x, y in values if math.isfinite(y)]
    values = [(x, y) for x, y in values if math.isfinite(y)]
    full = base.copy()
    ImageDraw.Draw(full).line(points, fill=ACCENT2, width=width)

    def make(key: Hashable) -> Image.Image:
        phase, index = cast(tuple[str, int], key)
        image = (base if phase == "grow" else full).copy()
        draw = ImageDraw.Draw(image)
        at = points[index]
        if phase == "grow":  # the curve being drawn, a pen at its tip
            draw.line(points[: index + 1] if index else points[:2], fill=ACCENT2, width=width)
            dot(draw, at, r * 0.6, FG)
            return image
        # Guides to the axes and a read-out say which point of the curve this is.
        draw.line((at[0], at[1], at[0], axis_y), fill=MUTED, width=1)
        draw.line((at[0], at[1], axis_x, at[1]), fill=MUTED, width=1)
        if labelled:
            x, y = values[index]
            draw.text((right, h * 0.04), f"x = {x:.2f}\ny = {y:.2f}", font=small, fill=FG,
                      anchor="ra", align="right")
        dot(draw, at, r, ACCENT)
        return image

    frame = _memo(make)

    def at(t: float) -> Image.Image:
        last = len(points) - 1
        if t < _GROW:
            return frame(("grow", round(last * t / _GROW)))
        return frame(("run", round(last * (t - _GROW) / (1 - _GROW))))

    return at


# -- steps ---------------------------------------------------------------------------------


def _steps(canvas: Canvas, text: str) -> Frame:
    """The question on top, numbered steps from its key terms appearing one by one; the
    newest step is the highlighted one."""
    w, h = canvas.width, canvas.height
    base, header_bottom = _header(canvas, text, font(max(10, h // 18)), FG)
    top, bottom = _area(canvas, header_bottom)
    lines = step_lines(key_terms(text, 4))
    count = len(lines)
    row = min((bottom - top) / count, h * 0.17)
    first = top + ((bottom - top) - row * count) / 2
    r = max(2.0, min(row * 0.38, w * 0.05))
    badge_x = w * 0.1 + r
    text_x = badge_x + r + w * 0.035
    face, digits = font(max(10, h // 18)), font(max(10, round(r * 1.1)))
    texts = [wrap(line, face, w * 0.95 - text_x, 1)[0] for line in lines]
    centres = [first + row * (i + 0.5) for i in range(count)]
    span = 0.82 / count
    fade = min(0.1, span * 0.5)

    def make(key: Hashable) -> Image.Image:
        newest, shown = cast(tuple[int, int], key)
        image = base.copy()
        draw = ImageDraw.Draw(image)
        for index in range(newest + 1):
            f = shown / 10 if index == newest else 1.0
            y, slide = centres[index], (1 - f) * w * 0.05
            if index:
                draw.line((badge_x, centres[index - 1] + r, badge_x, y - r),
                          fill=blend(BG, MUTED, f), width=max(1, h // 180))
            badge = ACCENT if index == newest else ACCENT2
            dot(draw, (badge_x + slide, y), r, blend(BG, badge, f))
            draw.text((badge_x + slide, y), str(index + 1), font=digits, fill=BG, anchor="mm")
            colour = FG if index == newest else blend(FG, MUTED, 0.35)
            draw.text((text_x + slide, y), texts[index], font=face, fill=blend(BG, colour, f),
                      anchor="lm")
        return image

    frame = _memo(make)

    def at(t: float) -> Image.Image:
        started = [i for i in range(count) if t >= 0.04 + span * i] or [0]
        newest = started[-1]
        shown = round(10 * _clamp((t - 0.04 - span * newest) / fade))
        return frame((newest, shown))

    return at


# -- diagram -------------------------------------------------------------------------------


def _box(draw: ImageDraw.ImageDraw, centre: Point, half: Point, text: str, face: Font,
         outline: Colour, fill: Colour, ink: Colour, width: int) -> None:
    x, y = centre
    radius = max(0.0, min(half[0], half[1], draw.im.size[1] / 40))
    draw.rounded_rectangle((x - half[0], y - half[1], x + half[0], y + half[1]), radius=radius,
                           fill=fill, outline=outline, width=width)
    draw.text((x, y), text, font=face, fill=ink, anchor="mm")


def _edge(centre: Point, half: Point, towards: Point) -> Point:
    """Where the ray from ``centre`` towards ``towards`` leaves the box of ``half`` sizes."""
    dx, dy = towards[0] - centre[0], towards[1] - centre[1]
    scale = min(half[0] / abs(dx) if dx else math.inf, half[1] / abs(dy) if dy else math.inf)
    if not math.isfinite(scale):
        return centre
    return centre[0] + dx * scale, centre[1] + dy * scale


def _diagram(canvas: Canvas, text: str) -> Frame:
    """The question on top, its first key term in a box in the middle and the others in
    boxes around it, each reached by an arrow that grows out of the middle in turn; then
    pulses run along the arrows."""
    w, h = canvas.width, canvas.height
    base, header_bottom = _header(canvas, text, font(max(10, h // 18)), FG)
    top, bottom = _area(canvas, header_bottom)
    # A small frame has room for the central term and two around it.
    terms = [shorten(t, TERM_CHARS) for t in key_terms(text, 5 if h >= 160 else 3)]
    terms = terms or [shorten(text, TERM_CHARS)]
    big, small = font(max(10, h // 16)), font(max(10, h // 22))
    pad = max(2.0, h / 45)
    line = max(1, h // 180)

    def half(label: str, face: Font) -> Point:
        return face.getlength(label) / 2 + pad * 1.6, line_step(face) / 2 + pad

    centre_label = wrap(terms[0], big, w * 0.36, 1)[0]
    centre_half = half(centre_label, big)
    centre = (w / 2, (top + bottom) / 2)
    others = [wrap(term, small, w * 0.26, 1)[0] for term in terms[1:]]
    halves = [half(label, small) for label in others]
    spots: list[Point] = []
    for index, box in enumerate(halves):
        angle = math.pi / 4 + 2 * math.pi * index / len(halves)
        x = centre[0] + w * 0.31 * math.cos(angle)
        y = centre[1] - max(0.0, (bottom - top) / 2 - box[1]) * math.sin(angle)
        # Kept inside the frame and the room above the captions, even when small.
        spots.append((min(max(x, box[0] + 2), w - box[0] - 2),
                      min(max(y, top + box[1]), max(top + box[1], bottom - box[1]))))
    gap = max(2.0, h / 90)
    arrows: list[tuple[Point, Point]] = []
    for spot, box in zip(spots, halves, strict=True):
        start, end = _edge(centre, centre_half, spot), _edge(spot, box, centre)
        length = math.hypot(end[0] - start[0], end[1] - start[1]) or 1.0
        back = min(gap, length / 2) / length
        arrows.append((start, (end[0] - (end[0] - start[0]) * back,
                               end[1] - (end[1] - start[1]) * back)))
    head = max(4.0, h / 40)
    _box(ImageDraw.Draw(base), centre, centre_half, centre_label, big, ACCENT2, (28, 58, 92), FG,
         max(1, h // 120))
    count = len(others)
    span = 0.75 / max(1, count)
    grow = span * 0.7

    layers = [base]

    def with_done(done: int) -> Image.Image:
        """The base with the first ``done`` arrows and boxes complete (built once each)."""
        while len(layers) <= done:
            image = layers[-1].copy()
            draw, index = ImageDraw.Draw(image), len(layers) - 1
            arrow(draw, *arrows[index], MUTED, line, head)
            _box(draw, spots[index], halves[index], others[index], small, ACCENT, BG, ACCENT, line)
            layers.append(image)
        return layers[done]

    def make(key: Hashable) -> Image.Image:
        done, step = cast(tuple[int, int], key)
        image = with_done(done).copy()
        draw = ImageDraw.Draw(image)
        if done < count:  # the next arrow growing, its box fading in as it arrives
            g = step / 100
            (sx, sy), (ex, ey) = arrows[done]
            arrow(draw, (sx, sy), (sx + (ex - sx) * g, sy + (ey - sy) * g), MUTED, line, head)
            f = _clamp((g - 0.6) / 0.4)
            if f > 0:
                _box(draw, spots[done], halves[done], others[done], small,
                     blend(BG, ACCENT, f), BG, blend(BG, ACCENT, f), line)
        elif count:  # everything is there: pulses run from the middle along every arrow
            u = step / 100
            for (sx, sy), (ex, ey) in arrows:
                dot(draw, (sx + (ex - sx) * u, sy + (ey - sy) * u), max(2, h // 70), ACCENT)
        else:  # a single term: a ring closes around it
            hx, hy = centre_half[0] + pad * 2, centre_half[1] + pad * 2
            draw.arc((centre[0] - hx, centre[1] - hy, centre[0] + hx, centre[1] + hy),
                     -90, -90 + 360 * step / 100, fill=ACCENT, width=max(2, h // 120))
        return image

    frame = _memo(make)

    def at(t: float) -> Image.Image:
        start = 0.05
        done = min(count, max(0, math.floor((t - start) / span)))
        if done < count:
            return frame((done, round(100 * _clamp((t - start - span * done) / grow))))
        if count:
            rest = (t - start - span * count) / max(1e-9, 1 - start - span * count)
            return frame((count, round(100 * ((rest * 3) % 1))))
        return frame((0, round(100 * _clamp(t / 0.8))))

    return at


_SCENES: dict[SceneKind, Callable[[Canvas, str], Frame]] = {
    "diagram": _diagram,
    "plot": _plot,
    "steps": _steps,
}
