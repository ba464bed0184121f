"""Where the workspace's shared fixtures live: ``../shared`` beside the checkout (as in CI)."""

from pathlib import Path

_CANDIDATES = (Path(__file__).resolve().parents[2] / "shared", Path("/work/shared"))
SHARED = next((path for path in _CANDIDATES if path.is_dir()), _CANDIDATES[0]).resolve()
OPF_TINY = SHARED / "fixtures" / "opf-tiny"
OPF_EXAMPLES = SHARED / "data" / "opf-examples"
OPF_SAMPLE = OPF_EXAMPLES / "sample_eval_five_examples.jsonl"
