-- Tenants are never deleted (a tenant that stops trading is suspended), and keep their id, as
-- on PostgreSQL (where `usage_events` has no foreign key to `tenants` and relies on it). Here
-- the foreign keys already refuse deleting a tenant that owns rows; these triggers refuse it
-- for every tenant, so both backends hold the same rule, which the authenticator's memory of
-- the tenants it found relies on.
CREATE TRIGGER tenants_are_never_deleted BEFORE DELETE ON tenants
BEGIN
    SELECT RAISE(ABORT, 'tenants are never deleted, and keep their id (suspend one instead)');
END;

CREATE TRIGGER tenants_keep_their_id BEFORE UPDATE OF id ON tenants
WHEN NEW.id IS NOT OLD.id
BEGIN
    SELECT RAISE(ABORT, 'tenants are never deleted, and keep their id (suspend one instead)');
END;
