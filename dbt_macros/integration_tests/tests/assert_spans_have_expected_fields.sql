-- The spans column has the documented struct fields and types (no raw text), and every span
-- points at a detection in the original note (0-based, end-exclusive code points): the same span
-- comes back from pii_spans_with_text on the raw note, which this test reads but never stores.
with typed as (
    select distinct typeof(note_spans) as spans_type
    from {{ ref('sanitized_contacts') }}
),

bad_types as (
    select 'type: ' || spans_type as problem
    from typed
    where spans_type != 'STRUCT("label" VARCHAR, "start" INTEGER, "end" INTEGER, score DOUBLE, "source" VARCHAR)[]'
),

spans as (
    select r.note as original, unnest(s.note_spans) as span,
           {{ pii_frames.pii_spans('r.note', include_text=true) }} as with_text
    from {{ ref('sanitized_contacts') }} as s
    join {{ ref('raw_contacts') }} as r using (id)
),

bad_spans as (
    select 'span: ' || span.label || ' ' || span."start" || '-' || span."end" as problem
    from spans
    where span."start" < 0
       or span."end" <= span."start"
       or span.score < 0 or span.score > 1
       or span.source not in ('model', 'pattern', 'deny_list')
       or len([w for w in with_text
               if w.label = span.label and w."start" = span."start" and w."end" = span."end"
                  and w.text = substring(original, span."start" + 1, span."end" - span."start")]) != 1
       or span.label not in ('account_number', 'private_address', 'private_date', 'private_email',
                             'private_person', 'private_phone', 'private_url', 'secret')
)

select problem from bad_types
union all
select problem from bad_spans
