"""One options object: every adapter's keywords are DetectOptions fields, validated once, typos named."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

import pii_frames as pii
import pii_frames.arrow as pa_pii
from pii_frames.engine.options import PER_CALL, DetectOptions, option_names, split_options


def test_options_are_frozen_typed_and_validated_once():
    options = DetectOptions(policy={"operator": "drop"}, biases={"b": 1})
    assert options.policy.operator == "drop" and options.biases == (("b", 1.0),)
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.on_error = "null"
    for bad in ({"output_mode": "loud"}, {"on_error": "skip"}, {"threads": 0}, {"cache_size": -1},
                {"biases": {"b": "high"}}):
        with pytest.raises(ValueError):
            DetectOptions(**bad)


def test_detector_settings_are_one_options_object():
    detector = pii.load("default", output_mode="redacted", on_error="null", opf_compatible=True)
    assert isinstance(detector.options, DetectOptions)
    assert (detector.output_mode, detector.on_error, detector.opf_compatible) == ("redacted", "null", True)
    assert detector.recognizers is None or detector.opf_compatible


def test_adapters_split_and_reject_unknown_options():
    assert set(PER_CALL) < option_names()
    detector_options, per_call = split_options({"device": "cpu", "n_ctx": 512, "on_error": "null"})
    assert detector_options == {"device": "cpu", "n_ctx": 512} and per_call == {"on_error": "null"}
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['outptu_mode'\]"):
        pa_pii.redact_array(pa.array(["x"]), outptu_mode="redacted")


def test_dbt_plugin_reads_the_same_option_names():
    pytest.importorskip("dbt.adapters.duckdb")
    from pii_frames.dbt import known_options

    assert known_options() == option_names() | {"model"}
