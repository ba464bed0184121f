"""Privacy-filter encoder: configs, checkpoint loading/saving, forward and batched runner.

Tensors only, no text. Typical use::

    from pii_frames.model import load_model, run_sequences
    model = load_model("path/to/checkpoint")            # opf or Hugging Face layout
    outputs = run_sequences(model, [np.array([13225, 11, 922])], n_ctx=4096, token_budget=8192)
    outputs[0].logprobs.shape                           # (3, num_labels)
"""

from .checkpoint import CheckpointError, load_model, save_opf_checkpoint
from .config import ModelConfig, read_config
from .encoder import EncoderOutput, PrivacyFilterModel
from .runner import SequenceOutput, run_sequences

__all__ = [
    "CheckpointError",
    "EncoderOutput",
    "ModelConfig",
    "PrivacyFilterModel",
    "SequenceOutput",
    "load_model",
    "read_config",
    "run_sequences",
    "save_opf_checkpoint",
]
