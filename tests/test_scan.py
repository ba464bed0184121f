"""pii_frames.scan: a test warehouse end to end, every input kind, the verdict rule, reports and bad input.

The warehouse and most inputs use the embedded default model (small, CPU).
Its data is unambiguous on purpose (full names, example.com addresses,
+1 415 555 numbers, plain product sentences), so the assertions hold for any
reasonable retraining of that model; the verdict rule itself is tested on a
scripted detector whose spans are known exactly.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import re
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pii_frames as pii
from pii_frames.discovery import VERDICT_CLEAN, VERDICT_PII, VERDICT_SKIPPED, ScanError, ScanReport
from pii_frames.discovery import scan as scan_module
from pii_frames.discovery.plans import sample_indices
from pii_frames.discovery.scan import PLACEHOLDER_RE, analyze_column
from pii_frames.discovery.sources import open_source
from pii_frames.engine.schema import DETECT_TYPE

FIRST = ["Maria", "John", "Anna", "Peter", "Sofia", "David", "Laura", "James", "Emma", "Lucas", "Olivia", "Daniel",
         "Sarah", "Thomas", "Julia", "Michael", "Elena", "Robert", "Clara", "Martin"]
LAST = ["Lopez", "Smith", "Svensson", "Mueller", "Rossi", "Johnson", "Garcia", "Brown", "Martin", "Fischer",
        "Bernard", "Wilson", "Novak", "Jensen", "Moreau", "Kowalski", "Silva", "Taylor", "Schmidt", "Dubois"]
CLEAN = ["The package arrived damaged and the box was open.", "Please resend the invoice for the last order.",
         "The delivery was two days late because of the weather.", "The product works as described, thank you.",
         "Can you check why the discount was not applied?", "The replacement part fits well.",
         "Our team needs ten more licenses for next quarter.", "The app crashes when the report is exported.",
         "Shipping costs seem higher than last month.", "The color of the item differs from the photo.",
         "Support solved the issue within an hour.", "The manual is missing a page about installation.",
         "We would like to upgrade to the premium plan.", "The refund has not arrived yet.",
         "The login page loads very slowly in the morning.", "Two items were missing from the box."]
ROWS = 400
SAMPLE_ROWS = 250

# (schema.table, column) -> what the column holds; "pii" columns must be found, "clean" ones must not,
# "skipped" ones must be listed with the reason's key words.
EXPECTED = {
    ("crm.customers", "customer_id"): ("skipped", "not text"),
    ("crm.customers", "full_name"): ("pii", "private_person"),
    ("crm.customers", "email"): ("pii", "private_email"),
    ("crm.customers", "signed_up_at"): ("skipped", "not text"),
    ("crm.customers", "country_code"): ("clean", None),
    ("crm.customers", "legacy_notes"): ("skipped", "null"),
    ("crm.tickets", "ticket_id"): ("skipped", "not text"),
    ("crm.tickets", "subject"): ("clean", None),
    ("crm.tickets", "body"): ("pii", None),
    ("crm.tickets", "opened_at"): ("skipped", "not text"),
    ("crm.tickets", "status"): ("clean", None),
    ("crm.tickets", "escalated_to"): ("skipped", "null"),
    ("main.orders", "order_id"): ("skipped", "not text"),
    ("main.orders", "amount"): ("skipped", "not text"),
    ("main.orders", "ordered_at"): ("skipped", "not text"),
    ("main.orders", "currency"): ("clean", None),
    ("main.orders", "shipping_note"): ("clean", None),
    ("main.orders", "contact_phone"): ("pii", "private_phone"),
    ("main.employees", "employee_id"): ("skipped", "not text"),
    ("main.employees", "manager_name"): ("pii", "private_person"),
    ("main.employees", "work_email"): ("pii", "private_email"),
    ("main.employees", "hired_on"): ("skipped", "not text"),
    ("main.employees", "department"): ("clean", None),
    ("main.employees", "comment"): ("skipped", "null"),
    ("main.events", "event_id"): ("skipped", "not text"),
    ("main.events", "kind"): ("clean", None),
    ("main.events", "occurred_at"): ("skipped", "not text"),
    ("main.events", "payload_bytes"): ("skipped", "not text"),
    ("main.events", "message"): ("pii", None),
    ("main.events", "region"): ("clean", None),
}


def people(rng: random.Random, n: int) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(n):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        out.append((f"{first} {last}", f"{first.lower()}.{last.lower()}{rng.randint(1, 99)}@example.com",
                    f"+1 415 555 {rng.randint(1000, 9999)}"))
    return out


def with_pii(rng: random.Random, name: str, email: str, phone: str) -> str:
    return rng.choice([
        f"Please call {name} on {phone} about the late delivery.",
        f"Customer {name} asked for a refund, write to {email}.",
        f"{name} wants the invoice resent to {email}.",
        f"Contact {email} or {phone} before Friday.",
    ])


def clean_text(rng: random.Random) -> str:
    return " ".join(rng.sample(CLEAN, 2))


def build_warehouse(path: Path) -> dict[str, list[str]]:
    """5 tables x 6 columns in two schemas; returns the raw personal values written."""
    rng = random.Random(18)
    start = dt.datetime(2024, 1, 1)
    raw: dict[str, list[str]] = {"names": [], "emails": [], "phones": []}

    def remember(rows):
        for name, email, phone in rows:
            raw["names"].append(name)
            raw["emails"].append(email)
            raw["phones"].append(phone)
        return rows

    customers = remember(people(rng, ROWS))
    ticket_people = remember(people(rng, ROWS))
    order_people = remember(people(rng, ROWS))
    staff = remember(people(rng, ROWS))
    event_people = remember(people(rng, ROWS))
    tables = {
        "crm.customers": pa.table({
            "customer_id": pa.array(range(1, ROWS + 1), pa.int64()),
            "full_name": [p[0] for p in customers],
            "email": [p[1] for p in customers],
            "signed_up_at": [start + dt.timedelta(hours=7 * i) for i in range(ROWS)],
            "country_code": [rng.choice(["US", "DE", "FR", "ES", "IT"]) for _ in range(ROWS)],
            "legacy_notes": pa.nulls(ROWS, pa.string()),
        }),
        "crm.tickets": pa.table({
            "ticket_id": pa.array(range(ROWS), pa.int32()),
            "subject": [clean_text(rng) for _ in range(ROWS)],
            "body": [with_pii(rng, *p) if i % 2 == 0 else clean_text(rng) for i, p in enumerate(ticket_people)],
            "opened_at": [start + dt.timedelta(minutes=90 * i) for i in range(ROWS)],
            "status": [rng.choice(["open", "closed", "pending"]) for _ in range(ROWS)],
            "escalated_to": pa.nulls(ROWS, pa.string()),
        }),
        "main.orders": pa.table({
            "order_id": pa.array(range(10_000, 10_000 + ROWS), pa.int64()),
            "amount": [round(rng.uniform(5, 500), 2) for _ in range(ROWS)],
            "ordered_at": [start + dt.timedelta(hours=3 * i) for i in range(ROWS)],
            "currency": [rng.choice(["EUR", "USD", "GBP"]) for _ in range(ROWS)],
            "shipping_note": [clean_text(rng) for _ in range(ROWS)],
            "contact_phone": [p[2] for p in order_people],
        }),
        "main.employees": pa.table({
            "employee_id": pa.array(range(ROWS), pa.int64()),
            "manager_name": [p[0] for p in staff],
            "work_email": [p[1] for p in staff],
            "hired_on": [(start + dt.timedelta(days=i)).date() for i in range(ROWS)],
            "department": [rng.choice(["Sales", "Finance", "Support", "Legal"]) for _ in range(ROWS)],
            "comment": pa.nulls(ROWS, pa.string()),
        }),
        "main.events": pa.table({
            "event_id": pa.array(range(ROWS), pa.int64()),
            "kind": [rng.choice(["click", "view", "purchase"]) for _ in range(ROWS)],
            "occurred_at": [start + dt.timedelta(seconds=37 * i) for i in range(ROWS)],
            "payload_bytes": pa.array([rng.randint(10, 9000) for _ in range(ROWS)], pa.int32()),
            "message": [with_pii(rng, *p) if i % 3 == 0 else clean_text(rng) for i, p in enumerate(event_people)],
            "region": [rng.choice(["north", "south", "east", "west"]) for _ in range(ROWS)],
        }),
    }
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA crm")
        for name, table in tables.items():
            con.register("incoming", table)
            con.execute(f"CREATE TABLE {name} AS SELECT * FROM incoming")
            con.unregister("incoming")
    return raw


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "warehouse.duckdb"
    raw = build_warehouse(path)
    report = pii.scan(path, sample_rows=SAMPLE_ROWS, seed=3)
    return path, raw, report


# ----------------------------------------------------------------- the warehouse
def test_warehouse_every_pii_column_found_and_nothing_else(warehouse):
    _, _, report = warehouse
    got = {(c.table, c.column): c for c in report.columns}
    assert set(got) == set(EXPECTED)
    assert report.tables() == ["crm.customers", "crm.tickets", "main.employees", "main.events", "main.orders"]
    for key, (kind, detail) in EXPECTED.items():
        column = got[key]
        if kind == "pii":
            assert column.verdict == VERDICT_PII, (key, column.labels)
            if detail:
                assert detail in column.found_labels, (key, column.labels)
        elif kind == "clean":
            assert column.verdict == VERDICT_CLEAN, (key, column.labels)
        else:
            assert column.verdict == VERDICT_SKIPPED, key
            assert detail in column.reason, (key, column.reason)


def test_warehouse_counts_and_reasons(warehouse):
    _, _, report = warehouse
    email = report.column("email", table="crm.customers")
    assert email.rows_total == ROWS and email.rows_sampled == SAMPLE_ROWS == email.values_scanned
    assert email.errors == 0 and email.spans >= email.rows_with_pii > 0.9 * SAMPLE_ROWS
    assert 0.5 <= email.mean_score <= 1.0
    # DuckDB: known from the sample only (counting nulls would read the whole column)
    assert report.column("crm.customers.legacy_notes").reason == f"all {SAMPLE_ROWS:,} sampled rows are null"
    assert report.column("crm.customers.signed_up_at").reason.startswith("type TIMESTAMP")
    assert report.column("main.orders.amount").reason == "type DOUBLE is not text"
    assert report.column("main.employees.hired_on").reason == "type DATE is not text"
    body = report.column("crm.tickets.body")
    # half of the ticket bodies mention someone; the share is estimated on the sample
    assert 0.3 < body.pii_share < 0.7
    assert {s.label for s in body.labels if s.found} <= {"private_person", "private_email", "private_phone"}
    assert len(report.skipped) == 15 and len(report.pii_columns) == 7


def test_warehouse_summary_line_per_table(warehouse):
    _, _, report = warehouse
    lines = dict(line.split(": ", 1) for line in report.summary_lines())
    assert set(lines) == set(report.tables())
    assert lines["crm.customers"].startswith("PII in 2 of 3 scanned columns (full_name: private_person")
    assert "3 skipped" in lines["crm.customers"] and f"{SAMPLE_ROWS:,} of {ROWS:,} rows sampled" in lines["crm.customers"]
    assert lines["main.orders"].startswith("PII in 1 of 3 scanned columns (contact_phone: private_phone)")


def test_reports_never_contain_a_raw_value(warehouse):
    path, raw, report = warehouse
    rendered = {
        "json": report.to_json(),
        "html": report._repr_html_(),
        "page": report.to_html(),
        "text": str(report),
        "rich": _rich_text(report),
        "arrow": json.dumps(report.to_arrow().to_pylist(), default=str),
    }
    for kind, text in rendered.items():
        for group, values in raw.items():
            leaked = sorted({v for v in values if v in text})
            assert not leaked, f"{kind} report holds raw {group}: {leaked[:3]}"
        assert not re.search(r"[\w.+-]+@[\w-]+\.\w+", text), kind
        assert not re.search(r"555 \d{4}", text), kind
    examples = [e for c in report.pii_columns for e in c.examples]
    assert examples and all(PLACEHOLDER_RE.search(e) for e in examples)
    assert all(len(c.examples) <= 3 for c in report.columns)


def test_html_has_a_bar_per_label_share_and_no_script(warehouse):
    _, _, report = warehouse
    page = report._repr_html_()
    assert "<script" not in page.lower()
    email = report.column("crm.customers.email")
    share = next(s for s in email.labels if s.label == "private_email").share
    assert f"width:{max(1.0, share * 100):.1f}%" in page
    assert page.count("pii-frames-scan") == 1 and "crm.tickets" in page
    assert report.to_html().startswith("<!DOCTYPE html>")


def test_same_seed_same_report_other_seed_other_sample(warehouse):
    path, _, report = warehouse
    again = pii.scan(path, sample_rows=SAMPLE_ROWS, seed=3, columns=["crm.customers.email", "crm.tickets.body"])
    for name in ("crm.customers.email", "crm.tickets.body"):
        assert again.column(name).to_dict() == report.column(name).to_dict()
    with open_source(path, sample_rows=50, seed=1) as first, open_source(path, sample_rows=50, seed=1) as second, \
            open_source(path, sample_rows=50, seed=2) as other:
        pick = lambda source: sorted(source.tables()[0].read_sample(["email"]).column("email").to_pylist())  # noqa: E731
        assert pick(first) == pick(second) != pick(other)


def test_exports(warehouse):
    _, _, report = warehouse
    table = report.to_arrow()
    assert table.num_rows == len(EXPECTED)
    assert table.schema.field("labels").type.value_type.names == ["label", "rows", "share", "spans", "mean_score", "found"]
    frame = report.to_polars()
    assert frame.filter(frame["verdict"] == VERDICT_PII).height == 7
    data = json.loads(report.to_json())
    assert data["totals"] == {"tables": 5, "columns": 30, "pii_columns": 7, "skipped_columns": 15,
                              "found_labels": sorted(data["totals"]["found_labels"])}
    assert data["settings"] == {"sample_rows": SAMPLE_ROWS, "seed": 3, "min_share": 0.05, "min_score": 0.5}
    assert data["model"].startswith("pii-frames/default")
    assert ScanReport.from_dict(data).to_dict() == data
    assert all(not c["examples"] for t in report.to_dict(examples=False)["tables"] for c in t["columns"])


def _rich_text(report) -> str:
    from rich.console import Console

    console = Console(record=True, width=160, file=open("/dev/null", "w"))
    report.print(console)
    return console.export_text()


def test_rich_rendering_lists_verdicts_and_reasons(warehouse):
    _, _, report = warehouse
    text = _rich_text(report)
    assert "crm.customers" in text and "all 250 sampled rows are null" in text and "type BIGINT is not text" in text
    assert text.count("no pii found") == 8 and "private_email" in text


# ----------------------------------------------------------------- every input kind
def small_table() -> pa.Table:
    return pa.table({
        "id": pa.array(range(6), pa.int64()),
        "email": ["maria.lopez@example.com", "john.smith@example.org", None, "anna.svensson@example.net",
                  "peter.mueller@example.de", "sofia.rossi@example.it"],
        "status": ["open", "closed", "open", "pending", "closed", "open"],
    })


def check_small(report, table: str | None = None) -> None:
    assert report.column("email", table=table).verdict == VERDICT_PII
    assert "private_email" in report.column("email", table=table).found_labels
    assert report.column("email", table=table).values_scanned == 5
    assert report.column("status", table=table).verdict == VERDICT_CLEAN
    assert report.column("id", table=table).verdict == VERDICT_SKIPPED


def test_polars_pandas_arrow_and_mapping_inputs():
    import pandas as pd
    import polars as pl

    table = small_table()
    check_small(pii.scan(table))
    check_small(pii.scan(table.to_batches()[0]))
    check_small(pii.scan(pl.from_arrow(table)))
    check_small(pii.scan(pl.from_arrow(table).lazy()))
    check_small(pii.scan(table.to_pandas()))
    frame = pd.DataFrame({"email": pd.Series(table.column("email").to_pylist(), dtype="string"),
                          "status": pd.Categorical(table.column("status").to_pylist()), "id": range(6)})
    check_small(pii.scan(frame))
    mixed = pd.DataFrame({"id": range(3), "anything": ["a", 2, None]}, dtype=object)
    reason = pii.scan(mixed.assign(email=["ann@example.com", None, "bo@example.org"])).column("anything").reason
    assert reason == "object column holds int values, not text"
    report = pii.scan({"a": table, "b": pl.from_arrow(table)})
    assert report.tables() == ["a", "b"]
    check_small(report, table="b")


def test_duckdb_relation_and_connection_inputs():
    con = duckdb.connect()
    con.register("incoming", small_table())
    con.execute("CREATE TABLE contacts AS SELECT * FROM incoming")
    con.execute("CREATE SCHEMA other")
    con.execute("CREATE TABLE other.contacts AS SELECT * FROM incoming")
    report = pii.scan(con)
    assert report.tables() == ["main.contacts", "other.contacts"]
    check_small(report, table="other.contacts")
    check_small(pii.scan(con.sql("SELECT * FROM contacts WHERE id >= 0")))
    assert pii.scan(con.table("contacts")).tables() == ["contacts"]


def test_file_inputs(tmp_path):
    table = small_table()
    pq.write_table(table, tmp_path / "contacts.parquet")
    folder = tmp_path / "parts"
    folder.mkdir()
    pq.write_table(table.slice(0, 3), folder / "part-0.parquet")
    pq.write_table(table.slice(3), folder / "part-1.parquet")
    (tmp_path / "contacts.csv").write_text(table.to_pandas().to_csv(index=False))
    (tmp_path / "contacts.jsonl").write_text(
        "\n".join(json.dumps(row) for row in table.to_pylist()) + "\n\n")
    with duckdb.connect(str(tmp_path / "db.duckdb")) as con:
        con.register("incoming", table)
        con.execute("CREATE SCHEMA crm")
        con.execute("CREATE TABLE crm.contacts AS SELECT * FROM incoming")
        con.execute("CREATE TABLE ids AS SELECT id FROM incoming")
    for path in ("contacts.parquet", "parts", "contacts.csv", "contacts.jsonl"):
        report = pii.scan(tmp_path / path)
        check_small(report)
        assert report.column("email").rows_total == 6
    assert pii.scan(tmp_path / "contacts.csv").column("id").reason == "values are int64, not text"
    assert pii.scan(str(tmp_path / "parts")).tables() == ["parts"]
    check_small(pii.scan(tmp_path / "db.duckdb"), table="crm.contacts")
    only = pii.scan(f"duckdb://{tmp_path / 'db.duckdb'}::crm.contacts")
    assert only.tables() == ["crm.contacts"]
    with pytest.raises(ScanError, match=r"table main.nope not found in .*db.duckdb; its tables: crm.contacts, main.ids"):
        pii.scan(f"duckdb://{tmp_path / 'db.duckdb'}::nope")


def test_sample_is_random_reproducible_and_reads_only_sampled_row_groups(tmp_path, monkeypatch):
    rows = 20_000
    values = [f"row {i}" for i in range(rows)]
    pq.write_table(pa.table({"body": values}), tmp_path / "big.parquet", row_group_size=500)
    indices = sample_indices(rows, 10, seed=0)
    assert len(set(indices.tolist())) == 10 and indices.max() > rows // 2 and indices.tolist() != list(range(10))
    read: list[int] = []
    from pii_frames.discovery import files as sources

    original = sources._take_from_row_group

    def counting(fragment, index, names, local):
        read.append(index)
        return original(fragment, index, names, local)

    monkeypatch.setattr(sources, "_take_from_row_group", counting)
    with open_source(tmp_path / "big.parquet", sample_rows=10, seed=0) as source:
        sample = source.tables()[0].read_sample(["body"]).column("body").to_pylist()
    assert sample == [values[i] for i in indices]
    assert len(read) <= 10 < 40  # 40 row groups, at most one read per sampled row
    # the streaming sampler (CSV) is reproducible and uniform-looking too
    (tmp_path / "big.csv").write_text("body\n" + "\n".join(values) + "\n")
    with open_source(tmp_path / "big.csv", sample_rows=200, seed=5) as a, \
            open_source(tmp_path / "big.csv", sample_rows=200, seed=5) as b:
        first = a.tables()[0].read_sample(["body"]).column("body").to_pylist()
        assert first == b.tables()[0].read_sample(["body"]).column("body").to_pylist()
    positions = [int(v.split()[1]) for v in first]
    assert len(set(positions)) == 200 and max(positions) > rows * 0.9 and min(positions) < rows * 0.1


def test_progress_bar_across_columns(capsys):
    pii.scan(small_table(), progress=True)
    err = capsys.readouterr().err
    assert "pii_frames scan" in err and "col" in err
    pii.scan(small_table(), progress=False)
    assert "pii_frames scan" not in capsys.readouterr().err


def test_columns_argument_and_all_null_sample():
    table = small_table().append_column("sparse", pa.array([None] * 5 + ["Maria Lopez"], pa.string()))
    assert sample_indices(6, 3, seed=1).tolist() == [1, 2, 4]  # the sample misses the one value
    report = pii.scan(table, columns=["email", "sparse", "id"], sample_rows=3, seed=1)
    assert [c.column for c in report.columns] == ["id", "email", "sparse"]
    assert report.column("sparse").reason == "all 3 sampled rows are null"
    assert pii.scan(table, columns=["sparse"], sample_rows=3, seed=0).column("sparse").verdict == VERDICT_PII
    assert report.column("id").reason == "type int64 is not text"


def test_module_and_function_are_both_callable():
    import pii_frames.discovery.report  # noqa: F401  (binds the package first)

    assert callable(scan_module)
    assert scan_module(small_table()).column("email").verdict == VERDICT_PII
    assert pii.scan(small_table()).column("email").verdict == VERDICT_PII


# ----------------------------------------------------------------- the verdict rule
class ScriptedDetector:
    """Spans per text, given by the test; redacts them with typed placeholders."""

    model_id = "scripted"
    span_labels = ["private_email", "private_person"]

    def __init__(self, spans_for):
        self.spans_for = spans_for

    def detect_arrow(self, array, *, policy=None, column=None, on_error=None, progress=None):
        rows = []
        for text in array.to_pylist():
            if text is None:
                rows.append(None)
                continue
            spans = self.spans_for(text)
            redacted, cursor = [], 0
            for span in spans:
                redacted += [text[cursor:span["start"]], f"<{span['label'].upper()}>"]
                cursor = span["end"]
            redacted.append(text[cursor:])
            rows.append({"redacted_text": "".join(redacted), "spans": spans, "category": None,
                         "labels": sorted({s["label"] for s in spans})})
        return pa.array(rows, type=DETECT_TYPE)


def email_spans(score: float):
    def spans_for(text: str):
        match = re.search(r"\S+@\S+", text)
        return [] if match is None else [{"label": "private_email", "start": match.start(), "end": match.end(),
                                          "text": None, "score": score}]
    return spans_for


def emails_in(count: int, total: int = 100) -> pa.Table:
    return pa.table({"body": [f"note {i} from user{i}@example.com" if i < count else f"note {i}" for i in range(total)]})


@pytest.mark.parametrize("count, verdict", [(4, VERDICT_CLEAN), (5, VERDICT_PII), (60, VERDICT_PII)])
def test_min_share_threshold(count, verdict):
    report = pii.scan(emails_in(count), model=ScriptedDetector(email_spans(0.9)))
    body = report.column("body")
    assert body.verdict == verdict
    assert body.labels[0].share == pytest.approx(count / 100) and body.rows_with_pii == count
    assert body.mean_score == pytest.approx(0.9)
    assert pii.scan(emails_in(count), model=ScriptedDetector(email_spans(0.9)), min_share=0.6).column("body").verdict == (
        VERDICT_PII if count >= 60 else VERDICT_CLEAN)


def test_min_score_threshold():
    low = pii.scan(emails_in(50), model=ScriptedDetector(email_spans(0.49))).column("body")
    assert low.verdict == VERDICT_CLEAN and low.labels == [] and low.spans == 0 and low.mean_score is None
    assert pii.scan(emails_in(50), model=ScriptedDetector(email_spans(0.5))).column("body").verdict == VERDICT_PII
    assert pii.scan(emails_in(50), model=ScriptedDetector(email_spans(0.49)), min_score=0.4).column(
        "body").verdict == VERDICT_PII


def test_placeholders_are_not_counted():
    texts = ["Call <PRIVATE_PERSON> now", "Mail <PRIVATE_EMAIL_3f9a1c2b7d4e5f60>.", "Key ******** here",
             "Call Maria<PRIVATE_PERSON> now", "<PRIVATE_EMAIL:v1:k1:AbC-_x>, ok"]

    def spans_for(text):
        # what a model might do: flag the placeholder and a character or two around it
        match = re.search(r"\S*(<[^>]*>|\*+)\S*", text)
        return [{"label": "private_person", "start": match.start(), "end": match.end(), "text": None, "score": 0.9}]

    values = pa.array(texts)
    result = analyze_column(values, ScriptedDetector(spans_for).detect_arrow(values), table="t", column="c",
                            type="string")
    assert result.rows_with_pii == 1 and result.labels[0].rows == 1  # only "Maria<PRIVATE_PERSON>" has a letter left


def test_row_errors_are_counted_not_scanned():
    class Failing(ScriptedDetector):
        def detect_arrow(self, array, **options):
            out = super().detect_arrow(array, **options)
            mask = pa.array([i == 0 for i in range(len(array))])
            return pa.StructArray.from_arrays([out.field(i) for i in range(out.type.num_fields)],
                                              fields=list(out.type), mask=mask)

    body = pii.scan(emails_in(10, 20), model=Failing(email_spans(0.9))).column("body")
    assert body.errors == 1 and body.values_scanned == 19 and body.rows_with_pii == 9


def test_policy_labels_and_allow_list_are_used(tmp_path):
    table = pa.table({"body": ["Mail maria.lopez@example.com", "Mail john.smith@example.org", "Call Maria Lopez"] * 4})
    people_only = pii.scan(table, policy={"labels": ["private_person"], "operator": "mask"})
    assert people_only.column("body").found_labels == ["private_person"]
    assert "*" not in "".join(people_only.column("body").examples)  # placeholders whatever the operator
    emails = pa.table({"email": ["maria.lopez@example.com", "john.smith@example.org"] * 5})
    assert pii.scan(emails).column("email").rows_with_pii == 10
    allowed = pii.scan(emails, policy=pii.Policy(allow=["maria.lopez@example.com"])).column("email")
    assert allowed.rows_with_pii == 5 and allowed.labels[0].share == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"unknown policy key\(s\) \['lables'\]"):
        pii.scan(emails, policy={"lables": ["private_email"]})


# ----------------------------------------------------------------- bad input
def test_bad_input_raises_one_clear_error(tmp_path):
    with pytest.raises(ScanError, match="no such file or folder: .*missing.parquet"):
        pii.scan(tmp_path / "missing.parquet")
    (tmp_path / "broken.parquet").write_bytes(b"this is not parquet at all")
    with pytest.raises(ScanError, match=r"cannot read .*broken.parquet as Parquet"):
        pii.scan(tmp_path / "broken.parquet")
    (tmp_path / "broken.duckdb").write_bytes(b"garbage" * 100)
    with pytest.raises(ScanError, match=r"cannot open .*broken.duckdb as a DuckDB database"):
        pii.scan(tmp_path / "broken.duckdb")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ScanError, match="cannot tell the format of .*notes.txt"):
        pii.scan(tmp_path / "notes.txt")
    (tmp_path / "bad.jsonl").write_text('{"a": "x"}\n[1, 2]\n')
    with pytest.raises(ScanError, match="bad.jsonl line 2 is not a JSON object"):
        pii.scan(tmp_path / "bad.jsonl")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScanError, match="holds no Parquet files"):
        pii.scan(tmp_path / "empty")
    with pytest.raises(ScanError, match=r"nothing to scan in .*: no text columns \(id: int64, at: timestamp"):
        pii.scan(pa.table({"id": [1, 2], "at": pa.array([1, 2], pa.timestamp("s"))}))
    with pytest.raises(ScanError, match=r"column\(s\) 'nope' not found .*; its columns: id, email, status"):
        pii.scan(small_table(), columns=["nope"])
    with pytest.raises(ScanError, match="holds no tables"):
        pii.scan(duckdb.connect())
    with pytest.raises(TypeError, match="scan\\(\\) cannot read a builtins.list"):
        pii.scan(["a", "b"])
    with pytest.raises(ValueError, match="sample_rows must be a positive integer"):
        pii.scan(small_table(), sample_rows=0)
    with pytest.raises(ValueError, match="min_share must be a number between 0 and 1"):
        pii.scan(small_table(), min_share=5)


def test_all_skipped_table_never_loads_a_model():
    class Exploding:
        model_id = "never"
        span_labels: list = []

        def detect_arrow(self, *args, **kwargs):
            raise AssertionError("the model ran on an all-null column")

    report = pii.scan(pa.table({"n": pa.nulls(3, pa.string()), "i": [1, 2, 3]}), model=Exploding())
    assert [c.verdict for c in report.columns] == [VERDICT_SKIPPED, VERDICT_SKIPPED]
    assert np.all([c.reason for c in report.columns] == ["all 3 rows are null", "type int64 is not text"])
