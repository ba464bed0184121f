-- The spans columns have the documented struct fields and types, and every span
-- points at its own text in the original note (0-based, end-exclusive code points).
with typed as (
    select distinct
        typeof(note_spans) as spans_type,
        typeof(note_spans_no_text) as spans_no_text_type
    from {{ ref('sanitized_contacts') }}
),

bad_types as (
    select 'type: ' || spans_type || ' / ' || spans_no_text_type as problem
    from typed
    where spans_type != 'STRUCT("label" VARCHAR, "start" INTEGER, "end" INTEGER, "text" VARCHAR, score DOUBLE)[]'
       or spans_no_text_type != 'STRUCT("label" VARCHAR, "start" INTEGER, "end" INTEGER, score DOUBLE)[]'
),

spans as (
    select r.note as original, unnest(s.note_spans) as span
    from {{ ref('sanitized_contacts') }} as s
    join {{ ref('raw_contacts') }} as r using (id)
),

bad_spans as (
    select 'span: ' || span.label || ' ' || span."start" || '-' || span."end" as problem
    from spans
    where span."start" < 0
       or span."end" <= span."start"
       or span.score < 0 or span.score > 1
       or substring(original, span."start" + 1, span."end" - span."start") != span.text
       or span.label not in ('account_number', 'private_address', 'private_date', 'private_email',
                             'private_person', 'private_phone', 'private_url', 'secret')
)

select problem from bad_types
union all
select problem from bad_spans
