-- Usage answers per closed UTC day, kept so that a question asked again over past days reads a
-- few small rows instead of scanning every event again. See the PostgreSQL migration of the
-- same name for how days, versions and cached answers relate.

CREATE TABLE usage_day_versions (
    tenant_id  BLOB    NOT NULL,
    event_type TEXT    NOT NULL,
    day        INTEGER NOT NULL,
    version    INTEGER NOT NULL CHECK (version > 0),
    PRIMARY KEY (tenant_id, event_type, day)
) STRICT, WITHOUT ROWID;

CREATE TABLE usage_day_cache (
    tenant_id  BLOB    NOT NULL,
    event_type TEXT    NOT NULL,
    shape      TEXT    NOT NULL,
    day        INTEGER NOT NULL,
    version    INTEGER NOT NULL CHECK (version >= 0),
    cells      TEXT    NOT NULL,
    cached_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, event_type, shape, day)
) STRICT;
