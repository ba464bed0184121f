-- Contacts with personal data removed from the free-text note and from a
-- contact line built from the structured columns.
with source as (
    select
        id,
        note,
        full_name || ', ' || email || ', ' || phone as contact_line
    from {{ ref('raw_contacts') }}
)

select
    id,
    {{ pii_frames.pii_redact('note') }} as note,
    {{ pii_frames.pii_spans('note') }} as note_spans,
    {{ pii_frames.pii_category('note') }} as note_category,
    {{ pii_frames.pii_redact('contact_line') }} as contact_line
from source
