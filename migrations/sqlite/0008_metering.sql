-- Metering: meters (which usage events count, how, by which dimensions, at what price) and the
-- usage events themselves, one row per entry: the event as ingested (revision 0) and each
-- correction after it (1, 2, ...). An entry's content never changes; a correction only stamps
-- the entry it replaces with `superseded_at`.

CREATE TABLE meters (
    id          BLOB    PRIMARY KEY NOT NULL CHECK (length(id) = 16),
    tenant_id   BLOB    NOT NULL REFERENCES tenants (id),
    slug        TEXT    NOT NULL CHECK (length(slug) BETWEEN 1 AND 63
                    AND substr(slug, 1, 1) GLOB '[a-z0-9]' AND slug NOT GLOB '*[^a-z0-9_-]*'),
    name        TEXT    NOT NULL CHECK (length(CAST(name AS BLOB)) BETWEEN 1 AND 200),
    description TEXT CHECK (length(CAST(description AS BLOB)) <= 2000),
    event_type  TEXT    NOT NULL CHECK (length(CAST(event_type AS BLOB)) BETWEEN 1 AND 256),
    aggregation TEXT    NOT NULL
                CHECK (aggregation IN ('SUM', 'COUNT', 'MIN', 'MAX', 'AVG', 'UNIQUE_COUNT', 'LATEST')),
    -- A singular JSONPath as given (`$.usage.tokens`); the code parses it into segments.
    value_path  TEXT,
    -- Dimension name -> JSONPath text, as JSON.
    group_by    TEXT    NOT NULL CHECK (json_type(group_by) = 'object'),
    -- `MeterPrice` as serde writes it (decimals as strings), as JSON.
    price       TEXT CHECK (json_type(price) = 'object'),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    archived_at INTEGER,
    -- Archived meters keep their slug: usage queries still name them by it.
    UNIQUE (tenant_id, slug),
    CHECK ((aggregation = 'COUNT') = (value_path IS NULL))
) STRICT;

-- Written in batches of thousands, so the table carries two indexes and nothing else: the key,
-- which also deduplicates (a revision-0 row per tenant, source and id, forever: `INSERT ... ON
-- CONFLICT DO NOTHING`) and finds an event's entries, and the scan of a meter's events by time.
CREATE TABLE usage_events (
    tenant_id     BLOB    NOT NULL REFERENCES tenants (id),
    source        TEXT    NOT NULL,
    event_id      TEXT    NOT NULL,
    revision      INTEGER NOT NULL CHECK (revision >= 0),
    kind          TEXT    NOT NULL CHECK (kind IN ('event', 'amendment', 'void')),
    event_type    TEXT    NOT NULL,
    subject       TEXT    NOT NULL,
    time          INTEGER NOT NULL,
    -- The event's `data`, JSON text.
    data          TEXT    NOT NULL,
    -- Why a correction was made; none on the event as ingested.
    reason        TEXT,
    recorded_at   INTEGER NOT NULL,
    -- When a correction replaced this entry; NULL while it is the event's current entry.
    superseded_at INTEGER,
    PRIMARY KEY (tenant_id, source, event_id, revision),
    CHECK ((revision = 0) = (kind = 'event')),
    CHECK ((revision = 0) = (reason IS NULL))
) STRICT;

CREATE INDEX usage_events_scan ON usage_events (tenant_id, event_type, time);

-- Entries are never deleted and never rewritten: the one change is stamping the current entry
-- superseded, once. (Neither trigger runs on insert.)
CREATE TRIGGER usage_events_no_delete BEFORE DELETE ON usage_events
BEGIN
    SELECT RAISE(ABORT, 'usage entries are never deleted');
END;

CREATE TRIGGER usage_events_superseded_once BEFORE UPDATE ON usage_events
WHEN OLD.superseded_at IS NOT NULL OR NEW.superseded_at IS NULL
  OR NEW.tenant_id IS NOT OLD.tenant_id OR NEW.source IS NOT OLD.source
  OR NEW.event_id IS NOT OLD.event_id OR NEW.revision IS NOT OLD.revision
  OR NEW.kind IS NOT OLD.kind OR NEW.event_type IS NOT OLD.event_type
  OR NEW.subject IS NOT OLD.subject OR NEW.time IS NOT OLD.time OR NEW.data IS NOT OLD.data
  OR NEW.reason IS NOT OLD.reason OR NEW.recorded_at IS NOT OLD.recorded_at
BEGIN
    SELECT RAISE(ABORT, 'a usage entry only gets superseded, once');
END;
