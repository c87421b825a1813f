-- Pending credit reservations by age: the sweeper releases holds that were never committed or
-- released (their resource server went away) once they are older than the configured bound.
CREATE INDEX credit_reservations_pending_by_age ON credit_reservations (created_at)
    WHERE state = 'pending';
