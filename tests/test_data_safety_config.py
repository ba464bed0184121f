"""A wrongly typed field in a checkpoint's config.json names the file and the field (issue 16).

It used to surface as a bare ``invalid literal for int() with base 10: 'three'``.
"""

from __future__ import annotations

import json
import shutil

import pytest

from pii_frames.model.config import CheckpointError, read_config

from shared_paths import OPF_TINY  # noqa: E402

if not OPF_TINY.is_dir():
    pytest.skip(f"shared fixture model {OPF_TINY} is absent", allow_module_level=True)


@pytest.mark.parametrize(
    ("field", "value", "wanted"),
    [("num_hidden_layers", "three", "an integer"), ("rms_norm_eps", "tiny", "a number"),
     ("vocab_size", [1, 2], "an integer")],
)
def test_wrongly_typed_field_names_file_and_field(tmp_path, field, value, wanted):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(OPF_TINY, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config[field] = value
    (checkpoint / "config.json").write_text(json.dumps(config), encoding="utf-8")
    with pytest.raises(CheckpointError) as caught:
        read_config(checkpoint)
    message = str(caught.value)
    assert str(checkpoint / "config.json") in message and f"field {field} must be {wanted}" in message
    assert repr(value) in message


def test_numbers_written_as_numeric_strings_still_load(tmp_path):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(OPF_TINY, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text(encoding="utf-8"))
    config["num_hidden_layers"] = str(config["num_hidden_layers"])
    (checkpoint / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert read_config(checkpoint).num_hidden_layers == int(config["num_hidden_layers"])
