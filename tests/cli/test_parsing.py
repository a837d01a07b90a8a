"""Option text -> values: attribute weights and strengths, with one-line errors naming the flag."""
import pytest

from facevae.cli.parsing import parse_attribute_weights, parse_strengths
from facevae.errors import FacevaeError


def test_weights_and_strengths_parse():
    assert parse_attribute_weights(["Smiling=1.5", "Eyeglasses"]) == [("Smiling", 1.5), ("Eyeglasses", 1.0)]
    assert parse_strengths("-3,-1.5, 0,1.5,3") == [-3.0, -1.5, 0.0, 1.5, 3.0]


@pytest.mark.parametrize("text", ["nan,1", "1,inf", "-inf"])
def test_strengths_that_are_not_finite_are_refused(text):
    with pytest.raises(FacevaeError, match="--strengths .* finite"):
        parse_strengths(text)


@pytest.mark.parametrize("item", ["Smiling=nan", "Smiling=inf"])
def test_weights_that_are_not_finite_are_refused(item):
    with pytest.raises(FacevaeError, match="--attribute .* finite"):
        parse_attribute_weights([item])


def test_malformed_text_is_refused():
    with pytest.raises(FacevaeError, match="must be a number"):
        parse_attribute_weights(["Smiling=lots"])
    with pytest.raises(FacevaeError, match="comma-separated"):
        parse_strengths("1;2")
    with pytest.raises(FacevaeError, match="at least one"):
        parse_attribute_weights([])
