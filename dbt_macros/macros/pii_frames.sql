{#-
  pii_frames macros: redact personal data in a text column from dbt models.

  Usage (column names or any SQL expression returning VARCHAR):
      select {{ pii_frames.pii_redact('body') }}   as body,
             {{ pii_frames.pii_spans('body') }}    as body_spans,
             {{ pii_frames.pii_category('body') }} as body_category
      from {{ ref('tickets') }}

  Every macro dispatches through adapter.dispatch(<name>, 'pii_frames'), so a
  project can override an implementation (dispatch config with
  macro_namespace: pii_frames). Only DuckDB is implemented: the SQL functions
  come from the dbt-duckdb plugin `pii_frames.dbt` declared in profiles.yml.
  NULL in gives NULL out.
-#}

{% macro pii_redact(column) -%}
  {{ return(adapter.dispatch('pii_redact', 'pii_frames')(column)) }}
{%- endmacro %}

{% macro default__pii_redact(column) -%}
  {{ return(pii_frames.pii_unsupported_adapter('pii_redact')) }}
{%- endmacro %}

{% macro duckdb__pii_redact(column) -%}
  pii_redact({{ column }})
{%- endmacro %}


{#- pii_spans(column, include_text=false): list of STRUCT(label, start, "end", score, source);
    start/end are 0-based code-point offsets into the original text, end-exclusive.
    No raw values, so the column can sit in a sanitized table. include_text=true appends the
    matched text (pii_spans_with_text): that is raw PII, for inspection queries only. -#}
{% macro pii_spans(column, include_text=false) -%}
  {{ return(adapter.dispatch('pii_spans', 'pii_frames')(column, include_text)) }}
{%- endmacro %}

{% macro default__pii_spans(column, include_text=false) -%}
  {{ return(pii_frames.pii_unsupported_adapter('pii_spans')) }}
{%- endmacro %}

{% macro duckdb__pii_spans(column, include_text=false) -%}
  {%- if include_text -%}
    pii_spans_with_text({{ column }})
  {%- else -%}
    pii_spans({{ column }})
  {%- endif -%}
{%- endmacro %}


{#- pii_category(column): the document category of multitask checkpoints, NULL otherwise. -#}
{% macro pii_category(column) -%}
  {{ return(adapter.dispatch('pii_category', 'pii_frames')(column)) }}
{%- endmacro %}

{% macro default__pii_category(column) -%}
  {{ return(pii_frames.pii_unsupported_adapter('pii_category')) }}
{%- endmacro %}

{% macro duckdb__pii_category(column) -%}
  pii_category({{ column }})
{%- endmacro %}


{% macro pii_unsupported_adapter(macro_name) -%}
  {%- if execute -%}
    {{ exceptions.raise_compiler_error(
        "pii_frames." ~ macro_name ~ " has no implementation for the '" ~ target.type ~ "' adapter. "
        ~ "It runs on DuckDB: use dbt-duckdb with `plugins: [{module: pii_frames.dbt}]` in profiles.yml. "
        ~ "To support another warehouse, add a macro named " ~ target.type ~ "__" ~ macro_name
        ~ " to your project and list your project before pii_frames in a `dispatch:` config "
        ~ "(macro_namespace: pii_frames)."
    ) }}
  {%- endif -%}
{%- endmacro %}
