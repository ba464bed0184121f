"""evaluate(): the whole path (tokenize, project gold, run, decode, score) with a model whose answers we know."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from rich.console import Console

from pii_frames.decode.labels import DEFAULT_LABEL_NAMES
from pii_frames.evaluation.evaluate import evaluate
from pii_frames.model.reference import EncoderOutput
from pii_frames.text.tokenizer import load_tokenizer

TEXT = "Hello, my name is John Smith and my email is john.smith@example.com"
# o200k ids of TEXT (DESIGN.md test vector) and the labels our fake model gives them.
LABEL_OF_TOKEN = {5928: "B-private_person", 16627: "E-private_person", 64626: "B-private_email",
                  640: "I-private_email", 68671: "I-private_email", 81309: "I-private_email",
                  1136: "E-private_email"}
from shared_paths import OPF_SAMPLE  # noqa: E402


class LookupModel(torch.nn.Module):
    """Predicts a fixed label per token id (O for unknown ids): a model with known, context-free answers."""

    def __init__(self):
        super().__init__()
        self.config = SimpleNamespace(num_labels=len(DEFAULT_LABEL_NAMES), pad_token_id=199999)
        self.doc_head = None
        index = {name: i for i, name in enumerate(DEFAULT_LABEL_NAMES)}
        self.table = {token: index[name] for token, name in LABEL_OF_TOKEN.items()}
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    @property
    def device(self):
        return self.anchor.device

    def forward(self, input_ids, attention_mask=None):
        logits = torch.full((*input_ids.shape, self.config.num_labels), -8.0)
        logits[..., 0] = 0.0
        for token, label in self.table.items():
            hit = input_ids == token
            logits[..., 0][hit] = -8.0
            logits[..., label][hit] = 0.0
        return EncoderOutput(logits=logits, pooled=None, doc_logits=None)


@pytest.fixture(scope="module")
def detector():
    return SimpleNamespace(model=LookupModel(), tokenizer=load_tokenizer(), labels=list(DEFAULT_LABEL_NAMES),
                           doc_classes=None, n_ctx=4096, token_budget=8192, decode_mode="viterbi",
                           model_id="lookup-model", device="cpu", calibration=None, biases=None)


RECORDS = [
    {"text": TEXT, "spans": {"private_person: John Smith": [[18, 28]],
                             "private_email: john.smith@example.com": [[45, 67]]}},
    {"text": "Call Ann tomorrow", "spans": {"private_person: Ann": [[5, 8]]}},
    {"text": "Nothing personal here.", "spans": {}},
]


def test_scores_match_the_known_predictions(detector):
    report = evaluate(detector, RECORDS, progress=False)
    assert report.examples == 3
    span = report.span
    assert (span.gold, span.predicted, span.found, span.correct) == (3, 2, 2, 2)
    assert span.precision == 1.0 and span.recall == pytest.approx(2 / 3)
    assert report.per_label["private_email"].f1 == 1.0
    assert report.per_label["private_person"].recall == 0.5
    assert report.detection.fn == 1 and report.detection.fp == 0  # the " Ann" token
    assert report.token_accuracy == pytest.approx(1 - 1 / report.tokens)
    assert report.loss is not None and report.loss > 0
    predicted = report.predictions[0]["predicted_spans"]
    assert [(s["label"], s["text"]) for s in predicted] == [("private_person", "John Smith"),
                                                           ("private_email", "john.smith@example.com")]


def test_argmax_and_untyped_modes(detector):
    argmax = evaluate(detector, RECORDS, decode_mode="argmax", progress=False)
    assert argmax.span.f1 == evaluate(detector, RECORDS, progress=False).span.f1
    relabelled = [{"text": TEXT, "spans": {"given_name: John Smith": [[18, 28]], "email: x": [[45, 67]]}}]
    untyped = evaluate(detector, relabelled, mode="untyped", progress=False)
    assert untyped.span.f1 == 1.0 and untyped.loss is None
    assert untyped.metrics["ground_truth_label_recall.recall.given_name"] == 1.0
    with pytest.raises(ValueError, match="given_name"):
        evaluate(detector, relabelled, progress=False)


def test_report_outputs(detector, tmp_path):
    report = evaluate(detector, RECORDS, max_examples=2, progress=False)
    assert report.examples == 2
    data = json.loads(report.to_json())
    assert data["summary"]["examples"] == 2 and data["summary"]["eval_mode"] == "typed"
    assert data["metrics"]["detection.span.precision"] == 1.0
    assert data["per_label"]["private_email"]["found"] == 1
    assert data["config"]["model"] == "lookup-model"

    console = Console(record=True, width=120)
    console.print(report.table())
    rendered = console.export_text()
    assert "private_email" in rendered and "overall" in rendered and "1.000" in rendered

    html = report.save_html(tmp_path / "report.html").read_text(encoding="utf-8")
    assert "<table>" in html and "private_person" in html and "data:image/png;base64," in html
    png = report.save_png(tmp_path / "chart.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.skipif(not OPF_SAMPLE.is_file(), reason="opf sample data not available")
def test_reads_a_dataset_path(detector):
    report = evaluate(detector, OPF_SAMPLE, progress=False)
    assert report.examples == 5 and report.span.gold == 14
    assert report.config["decode_mode"] == "viterbi"


def test_bad_mode_is_rejected(detector):
    with pytest.raises(ValueError, match="mode"):
        evaluate(detector, RECORDS, mode="strict", progress=False)
    with pytest.raises(ValueError, match="decode_mode"):
        evaluate(detector, RECORDS, decode_mode="beam", progress=False)


def test_lookup_model_logprobs_are_valid():
    # Guard for the fake itself: rows are proper distributions after log-softmax.
    ids = torch.tensor([[5928, 1, 1136]])
    probs = torch.softmax(LookupModel()(ids).logits, dim=-1)
    assert np.allclose(probs.sum(-1).numpy(), 1.0)


SOURCED = [
    # gold wider than the prediction ("my name is John Smith"): overlap finds it, containment does not
    {"text": TEXT, "spans": {"private_person: my name is John Smith": [[7, 28]],
                             "private_address: john.smith@example.com": [[45, 67]]},
     "info": {"source": "mail"}},
    {"text": "Call Ann tomorrow", "spans": {"private_person: Ann": [[5, 8]]}, "info": {"source": "chat"}},
    {"text": TEXT, "spans": {"private_person: John Smith": [[18, 28]],
                             "private_email: john.smith@example.com": [[45, 67]]}},
]


def test_overlap_figure_per_source_breakdown_and_confusion(detector):
    report = evaluate(detector, SOURCED, progress=False)
    # containment: of 5 gold spans only the last record's two are found; overlap adds the wide person span
    assert (report.span.gold, report.span.found) == (5, 2)
    assert (report.overlap.gold, report.overlap.found) == (5, 3)
    assert report.overlap_per_label["private_person"].recall == pytest.approx(2 / 3)
    assert report.per_label["private_person"].recall == pytest.approx(1 / 3)

    assert report.sources == ["-", "chat", "mail"]
    people = report.per_source("private_person")
    assert (people["mail"].gold, people["mail"].found) == (1, 0)
    assert report.per_source("private_person", rule="overlap")["mail"].found == 1
    assert people["chat"].recall == 0.0 and people["-"].recall == 1.0
    assert report.per_source()["-"].f1 == 1.0
    assert report.accumulator.per_source["mail"]["examples"] == 1

    # each missed gold span says what it got instead
    assert report.confusion == {"private_address": {"private_email": 1},
                                "private_person": {"missed": 1, "partial": 1}}

    data = json.loads(report.to_json())
    assert data["confusion"]["private_address"] == {"private_email": 1}
    assert data["per_source"]["mail"]["overlap"]["private_person"]["found"] == 1
    assert data["overlap"]["overall"]["found"] == 3
    assert data["metrics"]["detection.span_overlap.recall"] == pytest.approx(3 / 5)
    assert report.predictions[1]["info_source"] == "chat"

    console = Console(record=True, width=140)
    console.print(report.table(), report.source_table("private_person"), report.confusion_table())
    rendered = console.export_text()
    assert "overlap F1" in rendered and "mail" in rendered and "chat" in rendered
    assert "private_email 1" in rendered and "partial 1" in rendered
    with pytest.raises(ValueError, match="rule"):
        report.per_source(rule="exact")


def test_cli_eval_prints_sources_and_confusion(detector, tmp_path, monkeypatch, capsys):
    import argparse

    from pii_frames.cli import training as commands
    from pii_frames.synthetic import write_jsonl

    data = write_jsonl(tmp_path / "sourced.jsonl", SOURCED)
    monkeypatch.setattr("pii_frames.engine.loading.load", lambda *args, **kwargs: detector)
    parser = argparse.ArgumentParser()
    commands.add_eval_arguments(parser)
    monkeypatch.setenv("COLUMNS", "160")
    assert commands.run_eval(parser.parse_args([str(data), "--source-label", "private_person"])) == 0
    out = capsys.readouterr().out
    assert "Per source (private_person" in out and "mail" in out
    assert "Missed gold spans" in out and "partial 1" in out
    assert commands.run_eval(parser.parse_args([str(data), "--no-by-source", "--no-confusion"])) == 0
    out = capsys.readouterr().out
    assert "Per source" not in out and "Missed gold spans" not in out
    with pytest.raises(ValueError, match="--source-label"):
        commands.run_eval(parser.parse_args([str(data), "--source-label", "nickname"]))
