"""The steering grammar: parsing, the unencoded '+', limits, resolution errors, and the ops on a code."""

import pytest
from steerrec.service.neurons import UnknownNeuron
from steerrec.service.steering import (
    SpecError,
    apply_steers,
    check_count,
    parse_filter,
    parse_promote,
    parse_steer,
)

SLUGS = {"horror": 7, "comedy": 3, "sci-fi": 5}


def resolve(target: str) -> int:
    if target.isdigit():
        if int(target) < 10:
            return int(target)
        raise UnknownNeuron(target, [], 10, True)
    if target.lower() in SLUGS:
        return SLUGS[target.lower()]
    raise UnknownNeuron(target, ["horror"] if target.startswith("hor") else [], 10, True)


@pytest.mark.parametrize("raw, neuron, op, value", [
    ("horror:+3.0", 7, "+", 3.0),
    ("horror: 3.0", 7, "+", 3.0),      # what '+' becomes in an unencoded query string
    ("horror:   3", 7, "+", 3.0),
    ("horror:-1.5", 7, "-", 1.5),
    ("horror:=0", 7, "=", 0.0),
    ("horror:=-2", 7, "=", -2.0),
    ("horror:*0.5", 7, "*", 0.5),
    ("horror:*-1", 7, "*", -1.0),
    ("4:+2", 4, "+", 2.0),
    ("Horror:+1e1", 7, "+", 10.0),
    (" sci-fi : .5", 5, "+", 0.5),
])
def test_parse_steer(raw, neuron, op, value):
    s = parse_steer(raw, resolve, max_magnitude=50)
    assert (s.neuron, s.op, s.value) == (neuron, op, value)
    assert s.raw == raw


def test_space_and_plus_mean_the_same():
    a, b = parse_steer("horror: 3.0", resolve, 50), parse_steer("horror:+3.0", resolve, 50)
    assert (a.neuron, a.op, a.value) == (b.neuron, b.op, b.value)


@pytest.mark.parametrize("raw, problem", [
    ("horror:3", "missing operator"),
    ("horror", "not of the form"),
    ("horror:+", "not of the form"),
    ("horror:+abc", "not of the form"),
    ("horror:+nan", "not of the form"),
    ("horror:+inf", "not of the form"),
    (":+3", "not of the form"),
    ("horror:/3", "not of the form"),
    ("horror:+-3", "ambiguous"),
    ("horror: -3", "ambiguous"),
    ("horror:+51", "at most 50"),
    ("horror:*1e9", "at most 50"),
    ("hor:+1", "did you mean horror"),
    ("99:+1", "unknown neuron '99'"),
])
def test_bad_steers_name_the_parameter_and_the_allowed_form(raw, problem):
    with pytest.raises(SpecError) as err:
        parse_steer(raw, resolve, max_magnitude=50)
    e = err.value
    assert e.parameter == "steer" and e.value == raw
    assert problem in e.problem
    assert "TARGET:OPVALUE" in e.allowed
    body = e.to_dict()
    assert body["error"] == "invalid_parameter" and body["parameter"] == "steer"


@pytest.mark.parametrize("raw, neuron, threshold", [
    ("horror", 7, 0.0), ("horror:>0.5", 7, 0.5), ("3:>2", 3, 2.0), ("comedy : > 1", 3, 1.0)])
def test_parse_filter(raw, neuron, threshold):
    f = parse_filter(raw, resolve, max_threshold=100)
    assert (f.neuron, f.threshold) == (neuron, threshold)


@pytest.mark.parametrize("raw", ["horror:<1", "horror:>-1", "horror:1", "", "horror:>1e9"])
def test_bad_filters(raw):
    with pytest.raises(SpecError) as err:
        parse_filter(raw, resolve, max_threshold=100)
    assert err.value.parameter == "filter" and "TARGET:>T" in err.value.allowed


@pytest.mark.parametrize("raw, neuron, value, item", [
    ("horror:+2", 7, 2.0, None),
    ("horror: 2", 7, 2.0, None),
    ("horror:-1", 7, -1.0, None),
    ("1193@horror:+2", 7, 2.0, "1193"),
    ("item:with:colons@3:+1", 3, 1.0, "item:with:colons"),
])
def test_parse_promote(raw, neuron, value, item):
    p = parse_promote(raw, resolve, max_magnitude=50)
    assert (p.neuron, p.value, p.item) == (neuron, value, item)


@pytest.mark.parametrize("raw", ["horror:=2", "horror:*2", "@horror:+1", "horror", "horror:+99"])
def test_bad_promotes(raw):
    with pytest.raises(SpecError) as err:
        parse_promote(raw, resolve, max_magnitude=50)
    assert err.value.parameter == "promote"


def test_count_limit():
    check_count("steer", ["a"] * 3, 3, "form")
    with pytest.raises(SpecError, match="4 given; at most 3"):
        check_count("steer", ["a"] * 4, 3, "form")


def test_ops_are_in_scale_units_and_compose_left_to_right():
    z = {7: 2.0, 3: 1.0}  # a sparse code: neuron 5 is inactive
    scale = [0.5] * 10
    steers = [parse_steer(s, resolve, 50) for s in ("horror:+2", "horror:*3", "comedy:=4", "5:-1")]
    touched = apply_steers(z, steers, scale)
    assert touched[7] == (2.0, (2.0 + 2 * 0.5) * 3)
    assert touched[3] == (1.0, 4 * 0.5)
    assert touched[5] == (0.0, -0.5)  # no clamp: negative activation pushes away from the concept
    assert z == {7: 2.0, 3: 1.0}  # the input code is not modified
