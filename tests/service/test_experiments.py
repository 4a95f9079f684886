"""Experiment configuration, deterministic assignment, layering and QA overrides."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import pytest
from scipy import stats
from steerrec.service.experiments import (
    ExperimentConfigError,
    ExperimentSet,
    OverrideError,
    unit_hash,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "deploy" / "experiments.example.json"


def config(**overrides):
    base = {
        "experiments": [{
            "name": "boost", "salt": "s1",
            "arms": [
                {"name": "control", "weight": 5},
                {"name": "horror", "weight": 3, "steer": ["horror:+3.0"]},
                {"name": "comedy", "weight": 2, "steer": ["comedy:+2"], "filter": ["horror"],
                 "promote": ["42@comedy:+1"]},
            ],
        }],
    }
    base["experiments"][0].update(overrides)
    return base


def write(tmp_path, data, name="exp.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_unit_hash_is_sha256_of_salt_and_user():
    digest = hashlib.sha256(b"s1:user-7").digest()
    assert unit_hash("s1", "user-7") == int.from_bytes(digest[:8], "big") / 2**64
    assert 0 <= unit_hash("s1", "user-7") < 1


def test_assignment_is_deterministic_and_carries_the_arm_specs(tmp_path):
    path = write(tmp_path, config())
    a, b = ExperimentSet.load(path), ExperimentSet.load(path)
    for user in (f"u{i}" for i in range(500)):
        assert a.assign(user) == b.assign(user)
    arms = {a.assign(f"u{i}").arm: a.assign(f"u{i}") for i in range(500)}
    assert arms["control"].steer == [] and arms["control"].control
    assert arms["horror"].steer == ["horror:+3.0"] and not arms["horror"].control
    assert (arms["comedy"].filter, arms["comedy"].promote) == (["horror"], ["42@comedy:+1"])
    assert not any(x.forced for x in arms.values())


def test_assignment_follows_the_documented_hash():
    exps = ExperimentSet.from_dict(config())
    for user in ("alice", "bob", "u123"):
        point = unit_hash("s1", user)  # traffic 1.0: only the arm hash matters
        expected = "control" if point < 0.5 else "horror" if point < 0.8 else "comedy"
        assert exps.assign(user).arm == expected


def test_weight_proportions_chi_square_100k_users():
    exps = ExperimentSet.from_dict(config())
    counts = Counter(exps.assign(str(i)).arm for i in range(100_000))
    observed = [counts["control"], counts["horror"], counts["comedy"]]
    result = stats.chisquare(observed, [50_000, 30_000, 20_000])
    assert result.pvalue > 0.001, (observed, result)


def test_layering_puts_each_user_in_at_most_one_experiment_with_traffic_shares():
    data = {"experiments": [
        {"name": "a", "salt": "sa", "traffic": 0.3, "arms": [{"name": "control", "weight": 1}, {"name": "x", "weight": 1}]},
        {"name": "b", "salt": "sb", "traffic": 0.5, "arms": [{"name": "control", "weight": 1}, {"name": "y", "weight": 3}]},
    ]}
    exps = ExperimentSet.from_dict(data)
    n = 100_000
    got = Counter((x.experiment, x.arm) if (x := exps.assign(str(i))) else None for i in range(n))
    observed = [got[("a", "control")], got[("a", "x")], got[("b", "control")], got[("b", "y")], got[None]]
    expected = [0.15 * n, 0.15 * n, 0.125 * n, 0.375 * n, 0.2 * n]
    assert sum(observed) == n
    assert stats.chisquare(observed, expected).pvalue > 0.001, observed

    # Switching "a" off leaves every user of "b" where they were; a's users get no experiment.
    data["experiments"][0]["enabled"] = False
    off = ExperimentSet.from_dict(data)
    for i in range(5000):
        before, after = exps.assign(str(i)), off.assign(str(i))
        if before is not None and before.experiment == "b":
            assert after == before
        else:
            assert after is None


def test_override_forces_an_arm_and_off_opts_out():
    data = config(enabled=False)
    exps = ExperimentSet.from_dict(data)
    assert exps.assign("u1") is None  # disabled
    forced = exps.assign("u1", "boost:comedy")
    assert (forced.experiment, forced.arm, forced.forced) == ("boost", "comedy", True)
    assert forced.steer == ["comedy:+2"]
    assert ExperimentSet.from_dict(config()).assign("u1", "off") is None
    assert ExperimentSet.from_dict(config()).assign("u1", "OFF") is None
    assert ExperimentSet.from_dict(config()).assign("u1", "") == ExperimentSet.from_dict(config()).assign("u1")


@pytest.mark.parametrize("override, fragment", [
    ("boost", "must be EXPERIMENT:ARM or 'off'"),
    ("boost:", "must be EXPERIMENT:ARM"),
    ("nope:control", "no experiment named 'nope'"),
    ("boost:nope", "has no arm 'nope'; arms: ['control', 'horror', 'comedy']"),
])
def test_bad_override_is_a_value_error_listing_allowed_values(override, fragment):
    with pytest.raises(OverrideError, match="override") as err:
        ExperimentSet.from_dict(config()).assign("u1", override)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError) and err.value.value == override
    assert err.value.allowed == ["off", "boost:control", "boost:horror", "boost:comedy"]


def test_assignment_lists_are_fresh_copies():
    exps = ExperimentSet.from_dict(config())
    first = exps.assignment_for("boost", "horror")
    first.steer.append("mutated:+1")
    assert exps.assignment_for("boost", "horror").steer == ["horror:+3.0"]


@pytest.mark.parametrize("change, field, message", [
    ({"arms": [{"name": "a", "weight": 0}]}, "experiments[0].arms[0].weight", "greater than 0"),
    ({"arms": [{"name": "a", "weight": -2}]}, "experiments[0].arms[0].weight", "greater than 0"),
    ({"arms": []}, "experiments[0].arms", "at least 1"),
    ({"arms": [{"name": "a", "weight": 1}, {"name": "a", "weight": 2}]}, "experiments[0].arms",
     "arm names must be unique"),
    ({"arms": [{"name": "a", "weight": 1, "wieght": 2}]}, "experiments[0].arms[0].wieght", "Extra inputs"),
    ({"arms": [{"name": "a:b", "weight": 1}]}, "experiments[0].arms[0].name", "pattern"),
    ({"arms": [{"name": "a", "weight": 1, "steer": [" "]}]}, "experiments[0].arms[0].steer", "non-empty"),
    ({"traffic": 1.5}, "experiments[0].traffic", "less than or equal to 1"),
    ({"control": "missing"}, "experiments[0].control", "'missing' is not an arm"),
    ({"name": "off"}, "experiments[0].name", "reserved"),
    ({"salt": ""}, "experiments[0].salt", "at least 1 character"),
])
def test_config_errors_name_the_file_and_the_field(tmp_path, change, field, message):
    path = write(tmp_path, config(**change))
    with pytest.raises(ExperimentConfigError) as err:
        ExperimentSet.load(path)
    text = str(err.value)
    assert text.startswith(f"{path}: {field}: "), text
    assert message in text
    assert isinstance(err.value, ValueError)


def test_set_level_errors(tmp_path):
    two = config()
    two["experiments"].append(dict(two["experiments"][0]))
    with pytest.raises(ExperimentConfigError, match=r"exp.json: experiments: .*names must be unique; repeated: \['boost'\]"):
        ExperimentSet.load(write(tmp_path, two))
    two["experiments"][1] = dict(two["experiments"][0], name="other", traffic=0.6)
    with pytest.raises(ExperimentConfigError, match="traffic sums to 1.6"):
        ExperimentSet.load(write(tmp_path, two))
    same_salt = {"layer_salt": "s1", **config()}
    with pytest.raises(ExperimentConfigError, match="salt must differ from layer_salt"):
        ExperimentSet.load(write(tmp_path, same_salt))


def test_unreadable_files_name_the_file(tmp_path):
    with pytest.raises(ExperimentConfigError, match="does not exist"):
        ExperimentSet.load(tmp_path / "absent.json")
    with pytest.raises(ExperimentConfigError, match=r"bad.json: invalid JSON at line 2, column 1"):
        ExperimentSet.load(write(tmp_path, '{"experiments": [\n}', "bad.json"))
    with pytest.raises(ExperimentConfigError, match=r"bad.toml: invalid TOML"):
        ExperimentSet.load(write(tmp_path, "experiments = [", "bad.toml"))


def test_toml_is_the_same_document(tmp_path):
    toml = """
layer_salt = "L"
[[experiments]]
name = "boost"
salt = "s1"
[[experiments.arms]]
name = "control"
weight = 5
[[experiments.arms]]
name = "horror"
weight = 3
steer = ["horror:+3.0"]
[[experiments.arms]]
name = "comedy"
weight = 2
steer = ["comedy:+2"]
filter = ["horror"]
promote = ["42@comedy:+1"]
"""
    from_toml = ExperimentSet.load(write(tmp_path, toml, "exp.toml"))
    from_json = ExperimentSet.from_dict({"layer_salt": "L", **config()})
    assert all(from_toml.assign(str(i)) == from_json.assign(str(i)) for i in range(300))


def test_check_specs_reports_the_arm(tmp_path):
    exps = ExperimentSet.load(write(tmp_path, config()))

    def check(steer, filter, promote):
        if "comedy:+2" in steer:
            raise ValueError("unknown neuron 'comedy'")

    with pytest.raises(ExperimentConfigError, match=r"exp.json: experiments\[0\].arms\[2\] \(boost:comedy\): unknown neuron"):
        exps.check_specs(check)


def test_example_file_is_valid():
    exps = ExperimentSet.load(EXAMPLE)
    assert [e.name for e in exps.experiments] == ["genre-boost", "animation-promo"]
    assert exps.get("genre-boost").control_arm == "control"
    assert exps.get("animation-promo").enabled is False
    assert "genre-boost:more-horror" in exps.override_values()
