"""Pillow drawing shared by the local renderer's pictures: colours, fonts, wrapped text,
title cards, arrows and function labels (the animated scenes are in scenes.py)."""

from __future__ import annotations

import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from vq_plugins.services.video_writer import Canvas

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Colour = tuple[int, int, int]
Point = tuple[float, float]

BG, FG, MUTED = (18, 24, 38), (236, 240, 246), (120, 132, 156)
ACCENT, ACCENT2 = (255, 176, 59), (84, 190, 255)


@lru_cache(maxsize=32)
def font(size: int) -> Font:
    """Pillow's bundled scalable font at ``size`` pixels."""
    return ImageFont.load_default(size=size)


def wrap(text: str, face: Font, max_width: float, max_lines: int) -> list[str]:
    """Break ``text`` into at most ``max_lines`` lines no wider than ``max_width``."""
    lines: list[str] = []
    for word in text.split():
        if lines and face.getlength(f"{lines[-1]} {word}") <= max_width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    if len(lines) > max_lines:
        lines = [*lines[: max_lines - 1], lines[max_lines - 1] + " …"]
    for i, line in enumerate(lines):
        # A single overlong word would otherwise run off the frame.
        while len(line) > 1 and face.getlength(line) > max_width:
            line = lines[i] = line[:-2] + "…"
    return lines


def line_step(face: Font) -> float:
    """The distance between two baselines of ``face``."""
    return face.size * 1.25 if isinstance(face, ImageFont.FreeTypeFont) else 14


def draw_lines(draw: ImageDraw.ImageDraw, lines: list[str], face: Font, top: float,
               fill: Colour) -> float:
    """Draw centred lines from ``top`` down; returns the top of the next line."""
    for line in lines:
        draw.text((draw.im.size[0] / 2, top), line, font=face, fill=fill, anchor="ma")
        top += line_step(face)
    return top


def card(canvas: Canvas, heading: str, body: str | None = None,
         kicker: str | None = None) -> Image.Image:
    """A still card: an optional kicker, the wrapped heading and an optional body."""
    w, h = canvas.width, canvas.height
    image = Image.new("RGB", (w, h), BG)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, h - h // 40, w, h), fill=ACCENT)
    big, small = font(max(12, h // 11)), font(max(10, h // 20))
    top = h * 0.18
    if kicker:
        top = draw_lines(draw, [kicker.upper()], small, top, ACCENT) + h * 0.03
    top = draw_lines(draw, wrap(heading, big, w * 0.85, 4), big, top, FG)
    if body:
        draw_lines(draw, wrap(body, small, w * 0.8, 4), small, top + h * 0.04, MUTED)
    return image


def blend(a: Colour, b: Colour, f: float) -> Colour:
    """The colour ``f`` of the way from ``a`` to ``b`` (0: ``a``, 1: ``b``)."""
    return (round(a[0] + (b[0] - a[0]) * f), round(a[1] + (b[1] - a[1]) * f),
            round(a[2] + (b[2] - a[2]) * f))


def arrow(draw: ImageDraw.ImageDraw, start: Point, tip: Point, fill: Colour, width: int,
          head: float) -> None:
    """A line from ``start`` ending in a filled head of length ``head`` at ``tip``."""
    dx, dy = tip[0] - start[0], tip[1] - start[1]
    length = math.hypot(dx, dy)
    if length < 1:
        return
    ux, uy = dx / length, dy / length
    head = min(head, length)
    neck = (tip[0] - ux * head, tip[1] - uy * head)
    draw.line((start, neck), fill=fill, width=width)
    side = (-uy * head * 0.5, ux * head * 0.5)
    draw.polygon([tip, (neck[0] + side[0], neck[1] + side[1]),
                  (neck[0] - side[0], neck[1] - side[1])], fill=fill)


def dot(draw: ImageDraw.ImageDraw, at: Point, r: float, fill: Colour) -> None:
    """A filled disc of radius ``r`` centred ``at``."""
    draw.ellipse((at[0] - r, at[1] - r, at[0] + r, at[1] + r), fill=fill)


# Pillow's bundled font has no superscripts or radical sign: these are drawn by hand.
_SUPERSCRIPTS = {"²": "2", "³": "3", "ˣ": "x"}


def _label_runs(label: str) -> list[tuple[str, str]]:
    """``label`` as (style, text) runs: "text", "sup" (raised) or "root" (under a radical)."""
    runs: list[tuple[str, str]] = []
    rooted = False
    for ch in label:
        style = "sup" if ch in _SUPERSCRIPTS else "root" if rooted and ch.isalnum() else "text"
        rooted = ch == "√" or (rooted and style == "root")
        if ch == "√":
            continue
        text = _SUPERSCRIPTS.get(ch, ch)
        if runs and runs[-1][0] == style:
            runs[-1] = (style, runs[-1][1] + text)
        else:
            runs.append((style, text))
    return runs


def formula(draw: ImageDraw.ImageDraw, label: str, centre_x: float, top: float, size: int,
            fill: Colour) -> float:
    """Draw a function's label (``y = x²``, ``y = √x``) centred at ``centre_x`` from
    ``top``, with hand-drawn superscripts and radical; returns its bottom."""
    face, raised = font(size), font(max(8, round(size * 0.62)))
    runs = _label_runs(label)
    root = size * 0.45  # the radical sign's own width

    def width(style: str, text: str) -> float:
        return (raised if style == "sup" else face).getlength(text) + (root if style == "root"
                                                                        else 0)

    x = centre_x - sum(width(*run) for run in runs) / 2
    baseline = top + size * 0.95
    for style, text in runs:
        if style == "root":
            line = max(1, size // 14)
            draw.line([(x, baseline - size * 0.3), (x + size * 0.15, baseline - size * 0.4),
                       (x + size * 0.3, baseline), (x + root - size * 0.05, baseline - size * 0.8),
                       (x + width(style, text), baseline - size * 0.8)], fill=fill, width=line)
        draw.text((x + (root if style == "root" else 0), baseline - (size * 0.4 if style == "sup"
                                                                     else 0)),
                  text, font=raised if style == "sup" else face, fill=fill, anchor="ls")
        x += width(style, text)
    return top + line_step(face)
