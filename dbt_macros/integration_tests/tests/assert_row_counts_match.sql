-- Sanitizing must neither lose nor duplicate rows.
select raw_rows, sanitized_rows
from (select count(*) as raw_rows from {{ ref('raw_contacts') }}),
     (select count(*) as sanitized_rows from {{ ref('sanitized_contacts') }})
where raw_rows != sanitized_rows
