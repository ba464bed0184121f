"""Text side of the pipeline: o200k_base token ids and exact character offsets."""

from .tokenizer import Tokenizer, TokenizerError, TokenOffsets, load_tokenizer

__all__ = ["TokenOffsets", "Tokenizer", "TokenizerError", "load_tokenizer"]
