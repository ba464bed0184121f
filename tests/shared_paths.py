"""Where the workspace's shared fixtures live: ``../shared`` beside the checkout (as in CI)."""

from pathlib import Path

_CANDIDATES = (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared"))
SHARED = next((path for path in _CANDIDATES if path.is_dir()), _CANDIDATES[0]).resolve()
OPF_TINY = SHARED / "fixtures" / "opf-tiny"
OPF_EXAMPLES = SHARED / "data" / "opf-examples"
OPF_SAMPLE = OPF_EXAMPLES / "sample_eval_five_examples.jsonl"

# Rows every dataframe adapter is checked on: nulls, an empty string, unicode and a duplicate.
ADAPTER_ROWS = [
    "Hello, my name is John Smith and my email is john.smith@example.com",
    None,
    "héllo wörld 🎉 — Ms. Zoë Łukasiewicz, 12 Rue de Rivoli, Paris",
    "",
    "Hello, my name is John Smith and my email is john.smith@example.com",
    "Call +1 (415) 555-0100 before 2024-03-01 or visit https://example.org/x?id=7",
]
