-- PII clean-up of the sample tickets in SQL. Run it with examples/duckdb_tickets.py,
-- which registers pii_redact / pii_spans / pii_category / pii_detect on the connection.

CREATE TABLE tickets AS
SELECT * FROM read_csv('sample_customers.csv');

-- The redacted tickets, ready to share.
CREATE TABLE tickets_clean AS
SELECT ticket_id, created_at, channel, priority,
       pii_redact(customer) AS customer,
       pii_redact(body)     AS body
FROM tickets;

SELECT ticket_id, body FROM tickets_clean ORDER BY ticket_id LIMIT 5;

-- How much PII of each kind the bodies held (one row per detected span).
SELECT span.label, count(*) AS spans, count(DISTINCT ticket_id) AS tickets
FROM (SELECT ticket_id, unnest(pii_spans(body)) AS span FROM tickets)
GROUP BY span.label
ORDER BY spans DESC;

-- Tickets with the most findings, with the labels found.
SELECT ticket_id, len(d.spans) AS findings, d.labels
FROM (SELECT ticket_id, pii_detect(body) AS d FROM tickets)
ORDER BY findings DESC, ticket_id
LIMIT 5;
