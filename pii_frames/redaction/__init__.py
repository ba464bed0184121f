"""Redaction: policies and operators, and results in the reference JSON schema v1."""

from .apply import MISMATCH_WARNING, OUTPUT_MODES, build_result
from .policy import OPERATORS, Policy
from .result import DetectedSpan, RedactionResult

__all__ = ["MISMATCH_WARNING", "OPERATORS", "OUTPUT_MODES", "DetectedSpan", "Policy", "RedactionResult", "build_result"]
