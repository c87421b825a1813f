-- The corrections a usage answer lists are found through two partial indexes, as small as the
-- corrections themselves, instead of reading every event of the period: see the PostgreSQL
-- migration of the same name.
CREATE INDEX usage_events_corrections ON usage_events (tenant_id, event_type, time)
    WHERE revision > 0;
CREATE INDEX usage_events_superseded ON usage_events (tenant_id, event_type, time)
    WHERE superseded_at IS NOT NULL;
