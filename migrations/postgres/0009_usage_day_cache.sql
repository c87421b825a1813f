-- Usage answers per closed UTC day, kept so that a question asked again over past days reads a
-- few small rows instead of scanning every event again.
--
-- A day is *closed* once it ended at least 15 minutes ago (by the database's clock). Events
-- still arrive for closed days (up to `max_event_age_seconds` late), and corrections change
-- them, so each closed day of an event type has a version: every transaction that stores an
-- event or a correction in a day that ended less than 15 minutes into its future (so: every
-- closed day, and the last quarter hour of the current one) bumps it. An answer is cached with
-- the version read before the scan that computed it, and is used only while that version is
-- still the day's: a later event or correction makes the next query scan the day again.

-- Days are Unix days: floor(epoch seconds / 86400). No row: version 0 (no late entry yet).
CREATE TABLE usage_day_versions (
    tenant_id  uuid   NOT NULL,
    event_type text   NOT NULL,
    day        bigint NOT NULL,
    version    bigint NOT NULL CHECK (version > 0),
    CONSTRAINT usage_day_versions_pkey PRIMARY KEY (tenant_id, event_type, day)
);

-- `shape`: a hash of everything in a usage scan but its period (aggregation, value path, fine
-- bucket, subject and dimension filters, grouping); `cells`: the scan's cells for the day, as
-- JSON. A row is replaced when its day is recomputed.
CREATE TABLE usage_day_cache (
    tenant_id  uuid        NOT NULL,
    event_type text        NOT NULL,
    shape      text        NOT NULL,
    day        bigint      NOT NULL,
    version    bigint      NOT NULL CHECK (version >= 0),
    cells      text        NOT NULL,
    cached_at  timestamptz NOT NULL,
    CONSTRAINT usage_day_cache_pkey PRIMARY KEY (tenant_id, event_type, shape, day)
);
