"""Privacy-filter encoder: configs, checkpoint loading/saving, forward and batched runner.

Tensors only, no text. Typical use::

    from pii_frames.model import load_model, run_sequences
    model = load_model("path/to/checkpoint")            # opf or Hugging Face layout
    outputs = run_sequences(model, [np.array([13225, 11, 922])], n_ctx=4096, token_budget=8192)
    outputs[0].logprobs.shape                           # (3, num_labels)
"""

# Imported on first use: the config module is torch-free and is read by code
# (label spaces, DAG parsing) that must not pay for importing torch.
_LAZY = {
    "CheckpointError": "checkpoint",
    "load_model": "checkpoint",
    "save_opf_checkpoint": "checkpoint",
    "ModelConfig": "config",
    "read_config": "config",
    "EncoderOutput": "reference",
    "PrivacyFilterModel": "reference",
    "SequenceOutput": "runner",
    "run_sequences": "runner",
}

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


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'pii_frames.model' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
    globals()[name] = value
    return value
