"""Where the workspace's shared fixtures live: ``../shared`` beside the checkout (as in CI).

Tests that need these files are skipped, with one line saying why, when the folder is absent
(see ``conftest.pytest_collection_modifyitems``).
"""

from pathlib import Path

SHARED = (Path(__file__).resolve().parents[2] / "shared").resolve()
SHARED_MISSING = f"needs ../shared beside the checkout ({SHARED} not found)"
OPF_TINY = SHARED / "fixtures" / "opf-tiny"
OPF_EXAMPLES = SHARED / "data" / "opf-examples"
OPF_SAMPLE = OPF_EXAMPLES / "sample_eval_five_examples.jsonl"
REAL_NER = SHARED / "data" / "real-ner"

# Rows every dataframe adapter is checked on: nulls, an empty string, unicode and a duplicate.
ADAPTER_ROWS = [
    "Hello, my name is John Smith and my email is john.smith@example.com",
    None,
    "héllo wörld 🎉 — Ms. Zoë Łukasiewicz, 12 Rue de Rivoli, Paris",
    "",
    "Hello, my name is John Smith and my email is john.smith@example.com",
    "Call +1 (415) 555-0100 before 2024-03-01 or visit https://example.org/x?id=7",
]
