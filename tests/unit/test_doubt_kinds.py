"""Reading a doubt: which scene it wants, its key terms, the function it names."""

from __future__ import annotations

import math

import pytest

from vq_plugins.services.doubt_kinds import (
    DEFAULT_FUNCTION,
    SCENE_KINDS,
    classify,
    key_terms,
    named_function,
)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("How do I plot y = x^2?", "plot"),
        ("Why does sin(x) repeat every 2 pi?", "plot"),
        ("What does a parabola look like?", "plot"),
        ("Derive the quadratic formula", "plot"),
        ("graph of 3x^2 + 2", "plot"),
        ("Explain exponential growth", "plot"),
        ("What is e^x?", "plot"),
        ("Draw y = 2x + 1", "plot"),
        ("What is the square root of 2?", "plot"),
        ("natural log of a number", "plot"),
        ("Is a linear function always a straight line?", "plot"),
        ("Why is the sky blue?", "steps"),
        ("How does a battery store energy?", "steps"),
        ("Explain how photosynthesis works", "steps"),
        ("What are the steps of mitosis?", "steps"),
        ("What is Rayleigh scattering?", "diagram"),
        ("Parts of a cell", "diagram"),
        # Words that only look like a function name.
        ("Since when do tangent lines touch a circle?", "diagram"),
        ("Show me your blog login", "diagram"),
    ],
)
def test_classify(text: str, kind: str) -> None:
    assert classify(text) == kind
    assert kind in SCENE_KINDS


@pytest.mark.parametrize(
    ("text", "function_id", "x", "y"),
    [
        ("sine wave", "sin", math.pi / 2, 1.0),
        ("cos x", "cos", 0.0, 1.0),
        ("tan(x)", "tan", math.pi / 4, 1.0),
        ("x squared", "square", 3.0, 9.0),
        ("y = x**3", "cube", 2.0, 8.0),
        ("exponential decay", "exp", 1.0, math.e),
        ("ln x", "log", math.e, 1.0),
        ("sqrt of 9", "sqrt", 9.0, 3.0),
        ("y = -0.5x + 3", "linear", 2.0, 2.0),
        ("f(x) = 2x - 1", "linear", 1.0, 1.0),
    ],
)
def test_named_function_is_one_we_can_plot(
    text: str, function_id: str, x: float, y: float
) -> None:
    spec = named_function(text)
    assert spec is not None and spec.id == function_id
    assert spec.func(x) == pytest.approx(y)
    low, high = spec.x_range
    assert low < high and spec.y_range[0] < spec.y_range[1]
    # The whole plotted stretch is defined: no domain errors mid-scene.
    for step in range(21):
        assert math.isfinite(spec.func(low + (high - low) * step / 20))


def test_a_line_is_labelled_with_its_own_numbers() -> None:
    spec = named_function("y = -0.5x + 3")
    assert spec is not None and spec.label == "y = -0.5x + 3"
    low, high = spec.y_range
    assert low < spec.func(-3) and spec.func(3) < high


def test_user_text_is_never_evaluated() -> None:
    # An equation we cannot read plots the plain line, whatever the text holds.
    spec = named_function("y = __import__('os').system('false')")
    assert spec is DEFAULT_FUNCTION
    assert named_function("What is a noun?") is None


def test_key_terms_keep_order_without_stop_words_or_repeats() -> None:
    assert key_terms("Why is the sky blue? Is the Sky really blue at noon?") == [
        "sky",
        "blue",
        "really",
        "noon",
    ]
    assert key_terms("What is Rayleigh scattering?", limit=1) == ["Rayleigh"]
    assert key_terms("How do you do it?") == []
    # Typographic apostrophes, as phones type them, are apostrophes.
    assert key_terms("Don\u2019t explain what it\u2019s like") == []


def test_key_terms_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        key_terms("sky", limit=0)
