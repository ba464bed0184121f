{#-
  pii_frames.no_pii: a generic data test that fails when a column holds personal data.

  Usage in schema.yml (every argument optional):
      columns:
        - name: note
          data_tests:
            - pii_frames.no_pii:
                arguments:
                  labels: [private_email, private_phone]   # default: every label
                  sample_rows: 1000                        # null: every row
                  min_score: 0.5
                  seed: 0

  The test reads a reproducible random sample of the column
  (USING SAMPLE reservoir(sample_rows ROWS) REPEATABLE (seed)), runs the model
  on it (pii_detect, registered by the pii_frames.dbt plugin) and returns one
  row per sampled value holding a counted span, so dbt reports the offending
  row count ("Got 7 results"). A span counts as in pii_frames.scan: a listed
  label, a score of at least min_score, and a letter or digit outside
  pii_frames' own placeholders (<PRIVATE_EMAIL>, pseudonym and encryption
  tokens, runs of ***), so a sanitized column passes. The returned rows hold
  the redacted value and the labels, never the raw value, so
  `store_failures: true` stores no PII. Tolerate a few findings with the
  usual test configs (`error_if: ">10"`, `severity: warn`).
-#}

{% test no_pii(model, column_name, labels=none, sample_rows=1000, min_score=0.5, seed=0) %}
  {{ return(adapter.dispatch('test_no_pii', 'pii_frames')(model, column_name, labels, sample_rows, min_score, seed)) }}
{% endtest %}

{% macro default__test_no_pii(model, column_name, labels, sample_rows, min_score, seed) -%}
  {{ return(pii_frames.pii_unsupported_adapter('no_pii')) }}
{%- endmacro %}

{% macro duckdb__test_no_pii(model, column_name, labels, sample_rows, min_score, seed) -%}
{%- if labels is string -%}{%- set labels = [labels] -%}{%- endif -%}
{%- set placeholder = "'<[A-Z][A-Z0-9_]*(?:[_:][^<>\\s]*)?>|\\*{3,}'" -%}
with sampled as (
    select cast({{ column_name }} as varchar) as value
    from {{ model }}
    {%- if sample_rows is not none %}
    using sample reservoir({{ sample_rows | int }} rows) repeatable ({{ seed | int }})
    {%- endif %}
),

placeholders as (
    select value, regexp_extract_all(value, {{ placeholder }}) as tokens
    from sampled
    where value is not null
),

detected as (
    select
        pii_detect(value) as found,
        -- the value with each placeholder replaced by as many '#': span offsets stay valid
        array_to_string(
            [piece || coalesce(repeat('#', length(tokens[i])), '')
             for piece, i in string_split_regex(value, {{ placeholder }})],
            ''
        ) as masked
    from placeholders
),

findings as (
    select
        found.redacted_text as redacted_value,
        [span for span in found.spans
         if span.score >= {{ min_score | float }}
         {%- if labels %}
         and span.label in ({% for label in labels %}'{{ label | replace("'", "''") }}'{% if not loop.last %}, {% endif %}{% endfor %})
         {%- endif %}
         and regexp_matches(substring(masked, span."start" + 1, span."end" - span."start"), '[\pL\pN]')] as spans
    from detected
)

select
    redacted_value,
    list_sort(list_distinct([span.label for span in spans])) as pii_labels,
    len(spans) as pii_spans
from findings
where len(spans) > 0
{%- endmacro %}
