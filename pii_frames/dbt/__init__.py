"""dbt-duckdb plugin that registers the pii_frames SQL functions on every connection dbt opens.

Add it to a ``type: duckdb`` output in ``profiles.yml``::

    my_project:
      target: dev
      outputs:
        dev:
          type: duckdb
          path: warehouse.duckdb
          plugins:
            - module: pii_frames.dbt
              config:
                model: /models/privacy-filter     # optional; default resolution otherwise
                device: cpu                        # optional
                policy: {operator: placeholder}    # optional pii_frames.Policy arguments

Then ``pii_redact(col)``, ``pii_spans(col)``, ``pii_category(col)`` and
``pii_detect(col)`` work in every model, test and hook, directly or through
the ``pii_frames`` dbt package macros (``{{ pii_frames.pii_redact('body') }}``).
The model loads on the first query that uses a function, once per dbt process.

Config keys: ``model``, every :func:`pii_frames.load` / Detector option
(``device``, ``dtype``, ``token_budget``, ``threads``, ``n_ctx``, ...) and the
detection options (``policy``, ``output_mode``, ``decode_mode``, ``biases``,
``on_error``). dbt-duckdb merges the profile's DuckDB ``settings`` into every
plugin's config; those keys are left out here. dbt Fusion does not load
dbt-duckdb plugins, so this needs dbt Core.
"""

from __future__ import annotations

from typing import Any

try:
    from dbt.adapters.duckdb.plugins import BasePlugin
except ImportError as error:  # pragma: no cover - only without dbt-duckdb
    raise ImportError("pii_frames.dbt is a dbt-duckdb plugin: pip install 'pii_frames[dbt]'") from error

__all__ = ["Plugin", "known_options"]


def known_options() -> set[str]:
    """Every config key the plugin accepts (the engine's DetectOptions, so it never drifts).

    >>> {"model", "policy", "device", "token_budget"} <= known_options()
    True
    """
    from pii_frames.engine.options import option_names

    return {"model"} | option_names()


class Plugin(BasePlugin):
    """Registers ``pii_redact``/``pii_spans``/``pii_category``/``pii_detect`` via :func:`pii_frames.duckdb.register`."""

    def initialize(self, plugin_config: dict[str, Any]) -> None:
        settings = dict(getattr(self.creds, "settings", None) or {})
        config = {
            key: value
            for key, value in plugin_config.items()
            # dbt-duckdb copies the profile's DuckDB settings into plugin configs.
            if not (key in settings and settings[key] == value)
        }
        unknown = sorted(set(config) - known_options())
        if unknown:
            raise ValueError(
                f"pii_frames.dbt plugin: unknown config key(s) {unknown} in profiles.yml; "
                f"known keys are {sorted(known_options())}"
            )
        model = config.pop("model", None)
        if isinstance(model, str) and not model.strip():
            model = None  # env_var('PII_FRAMES_MODEL', '') renders an empty string when unset
        self.model = model
        from pii_frames.engine.options import NONE_MEANS_OFF

        self.options = {key: value for key, value in config.items() if value is not None or key in NONE_MEANS_OFF}

        from pii_frames.arrow import split_options
        from pii_frames.engine.loading import resolve_checkpoint

        try:
            split_options(self.options)  # a malformed policy fails when dbt starts, not inside a query
        except (TypeError, ValueError) as error:
            raise ValueError(f"pii_frames.dbt plugin: invalid config in profiles.yml: {error}") from error
        # Resolving is cheap (no weights are read) and turns a missing model into a clear error now.
        try:
            self.checkpoint_dir, self.model_id = resolve_checkpoint(self.model)
        except Exception as error:
            raise type(error)(f"pii_frames.dbt plugin (profiles.yml `model`): {error}") from error

    def configure_connection(self, conn) -> None:
        from pii_frames.duckdb import register

        register(conn, self.model, **self.options)
