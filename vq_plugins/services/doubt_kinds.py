"""What kind of scene a doubt wants, read from its text: a function plot, steps or a diagram.

Pure and light (no Manim, no numpy), so the Manim client, the reference Manim service and
the scenes it renders all read a question the same way:

- ``plot`` when the question names a function: sin, cos, tan, x^2 / x squared / parabola /
  quadratic, x^3 / cubic, exponential / e^x, log / ln, sqrt / square root, a linear
  function, or an equation ``y = ...`` / ``f(x) = ...``;
- ``steps`` for how and why questions (and "explain how", "what are the steps");
- ``diagram`` for everything else.

A plotted function is always one of the fixed ones below, picked by a pattern: user text
is never evaluated.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

SceneKind = Literal["diagram", "plot", "steps"]
SCENE_KINDS: tuple[SceneKind, ...] = ("diagram", "plot", "steps")


@dataclass(frozen=True)
class FunctionSpec:
    """A function a scene can plot: ``id`` names it, ``func`` computes it on ``x_range``."""

    id: str
    label: str
    func: Callable[[float], float]
    x_range: tuple[float, float]
    y_range: tuple[float, float]


def _linear(slope: float, intercept: float) -> Callable[[float], float]:
    return lambda x: slope * x + intercept


_FUNCTIONS: dict[str, FunctionSpec] = {
    spec.id: spec
    for spec in (
        FunctionSpec("sin", "y = sin(x)", math.sin, (0.0, 2 * math.pi), (-1.2, 1.2)),
        FunctionSpec("cos", "y = cos(x)", math.cos, (0.0, 2 * math.pi), (-1.2, 1.2)),
        # Kept inside (-pi/2, pi/2): the curve has no asymptote to jump across.
        FunctionSpec("tan", "y = tan(x)", math.tan, (-1.3, 1.3), (-4.0, 4.0)),
        FunctionSpec("square", "y = x²", lambda x: x * x, (-2.0, 2.0), (-0.5, 4.5)),
        FunctionSpec("cube", "y = x³", lambda x: x**3, (-1.6, 1.6), (-4.2, 4.2)),
        FunctionSpec("exp", "y = eˣ", math.exp, (-2.0, 2.0), (-0.5, 7.5)),
        FunctionSpec("log", "y = ln(x)", math.log, (0.1, 6.0), (-2.5, 2.0)),
        FunctionSpec("sqrt", "y = √x", math.sqrt, (0.0, 6.0), (-0.2, 2.6)),
        FunctionSpec("linear", "y = x", _linear(1.0, 0.0), (-3.0, 3.0), (-3.2, 3.2)),
    )
}

DEFAULT_FUNCTION = _FUNCTIONS["linear"]
"""What a plot scene draws when the text names no function: ``y = x``."""

# Most specific first: "the derivative of sin(x^2)" is about sin, "y = x^2" about x^2.
_NAMED: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, re.IGNORECASE))
    for name, pattern in (
        ("sin", r"\b(sin|sine)\b"),
        ("cos", r"\b(cos|cosine)\b"),
        ("tan", r"\btan\b|\btangent (function|graph|curve)"),
        ("exp", r"\bexponential\b|\be\s*\^\s*\(?x\b|\beˣ|\bexp\s*\("),
        ("log", r"\b(log|ln|logarithms?|logarithmic)\b"),
        ("sqrt", r"\bsqrt\b|\bsquare roots?\b|√"),
        ("cube", r"(?<![a-z])x\s*(\^|\*\*)\s*3\b|x³|\bx cubed\b|\bcubic\b"),
        ("square", r"(?<![a-z])x\s*(\^|\*\*)\s*2\b|x²|\bx squared\b|\bparabola|\bquadratic"),
        ("linear", r"\blinear (function|equation|graph)s?\b|\bstraight line\b|\by\s*=\s*mx\b"),
    )
)
# y = 2x + 1, y = -x, y = 0.5x - 3: a line we can draw from its two numbers.
_LINE = re.compile(
    r"(?:\by|\bf\s*\(\s*x\s*\))\s*=\s*(?P<slope>[+-]?\s*\d*\.?\d*)\s*\*?\s*x\b"
    r"(?:\s*(?P<sign>[+-])\s*(?P<intercept>\d+(?:\.\d+)?))?(?!\s*[\^*/(\w])",
    re.IGNORECASE,
)
_EQUATION = re.compile(r"\b(y|f\s*\(\s*x\s*\))\s*=\s*\S", re.IGNORECASE)
_STEPS = re.compile(
    r"^\W*(how|why)\b|\b(how (do|does|did|can|could|should|would|is|are|to)|why (do|does|did|"
    r"is|are|can|was|were)|explain how|explain why|what are the steps|step by step|steps)\b",
    re.IGNORECASE,
)
_APOSTROPHE = "\u2019"  # the typographic one, as phones type it
_WORD = re.compile(rf"[^\W\d_][\w'{_APOSTROPHE}-]*")
_STOP_TEXT = """
    a about above after again against all also am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each explain explained explains few for from further get
    gets give got had hadn't has hasn't have haven't having he her here hers herself him himself
    his how i if in into is isn't it it's its itself just let's like make makes me mean means
    more most much must my myself need no nor not now of off on once only or other our ours
    ourselves out over own please same she should shouldn't show so some such tell than that
    that's the their theirs them themselves then there these they this those through to too
    under until up us very want was wasn't we were weren't what what's when where which while
    who whom whose why will with won't would wouldn't you your yours yourself
"""
STOP_WORDS = frozenset(_STOP_TEXT.split())


def named_function(text: str) -> FunctionSpec | None:
    """The function a question names (see the module docstring), or ``None``."""
    for name, pattern in _NAMED:
        if pattern.search(text):
            return _FUNCTIONS[name]
    line = _LINE.search(text)
    if line is not None:
        return _line_from(line)
    if _EQUATION.search(text):
        # An equation we cannot read is still a question about a graph: draw the plainest.
        return _FUNCTIONS["linear"]
    return None


def _line_from(match: re.Match[str]) -> FunctionSpec:
    raw = match["slope"].replace(" ", "")
    try:
        slope = -1.0 if raw == "-" else 1.0 if raw in ("", "+") else float(raw)
    except ValueError:  # "y = .x": a dot and no digits
        return _FUNCTIONS["linear"]
    intercept = float(match["intercept"] or 0) * (-1 if match["sign"] == "-" else 1)
    if not (math.isfinite(slope) and math.isfinite(intercept)) or abs(slope) > 1e6:
        return _FUNCTIONS["linear"]
    low, high = sorted((-3 * slope + intercept, 3 * slope + intercept))
    pad = max(0.5, (high - low) * 0.1)
    label = f"y = {_number(slope, unit=True)}x" + (
        f" {'-' if intercept < 0 else '+'} {_number(abs(intercept))}" if intercept else ""
    )
    return FunctionSpec(
        "linear", label, _linear(slope, intercept), (-3.0, 3.0), (low - pad, high + pad)
    )


def _number(value: float, unit: bool = False) -> str:
    if unit and value in (1.0, -1.0):
        return "" if value > 0 else "-"
    return f"{value:g}"


def classify(text: str) -> SceneKind:
    """The scene a question wants: ``plot``, ``steps`` or ``diagram`` (module docstring)."""
    if named_function(text) is not None:
        return "plot"
    if _STEPS.search(text):
        return "steps"
    return "diagram"


def key_terms(text: str, limit: int = 4) -> list[str]:
    """Up to ``limit`` content words of ``text`` in order of appearance, without stop
    words or repeats (compared case-insensitively; the first spelling is kept)."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    terms: list[str] = []
    seen: set[str] = set()
    for match in _WORD.finditer(text):
        word = match.group().strip(f"'{_APOSTROPHE}-")
        folded = word.casefold().replace(_APOSTROPHE, "'")
        if len(word) < 2 or folded in STOP_WORDS or folded in seen:
            continue
        seen.add(folded)
        terms.append(word)
        if len(terms) == limit:
            break
    return terms


# What the scenes of both renderers say, so the PyAV and the Manim video agree.
TERM_CHARS = 24
FALLBACK_STEPS = ("Read the question", "Break it into parts", "Put the parts together")


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def step_lines(terms: Sequence[str]) -> list[str]:
    """Step texts naming the key terms in order: start, then each, then the conclusion."""
    terms = [shorten(t, TERM_CHARS) for t in terms]
    if not terms:
        return list(FALLBACK_STEPS)
    if len(terms) == 1:
        return [f"Start with {terms[0]}", f"Look at what {terms[0]} does", f"Sum up {terms[0]}"]
    middle = [f"Then bring in {t}" for t in terms[1:-1]]
    return [f"Start with {terms[0]}", *middle, f"Link {terms[-1]} back to {terms[0]}"]


def nice_step(span: float) -> float:
    """An axis tick step of 1, 2 or 5 times a power of ten giving about eight ticks."""
    raw = max(span, 1e-9) / 8
    power = 10 ** math.floor(math.log10(raw))
    return float(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))
