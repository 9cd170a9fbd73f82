-- The dates the admin gave at creation. The API key's validity window (start - 10 days ..
-- end + 5 days) follows these only; an XML import rewrites start_date/end_date but never these.
ALTER TABLE events ADD COLUMN key_start_date TEXT;
ALTER TABLE events ADD COLUMN key_end_date TEXT;
