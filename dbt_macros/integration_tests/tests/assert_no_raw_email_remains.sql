-- Fails for every sanitized row that still contains its raw email, or anything shaped like an email.
select s.id, s.note, s.contact_line
from {{ ref('sanitized_contacts') }} as s
join {{ ref('raw_contacts') }} as r using (id)
where contains(coalesce(s.note, ''), r.email)
   or contains(s.contact_line, r.email)
   or regexp_matches(coalesce(s.note, '') || ' ' || s.contact_line, '[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}')
