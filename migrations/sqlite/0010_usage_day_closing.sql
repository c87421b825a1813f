-- When a day closes, and which writes bump its version, changed: see the PostgreSQL migration
-- of the same name. A day is closed an hour after it ends; a write bumps a day's version only
-- when the day ended over half an hour before it. Answers of the last days cached under the
-- old rule are dropped.
DELETE FROM usage_day_cache WHERE day >= CAST(strftime('%s', 'now') AS INTEGER) / 86400 - 2;
