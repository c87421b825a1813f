-- Tenants are never deleted (a tenant that stops trading is suspended), and keep their id.
-- Every tenant-owned row names its tenant, and `usage_events` does so without a foreign key
-- (its check per row cost a 10,000-event batch about 30%, see 0008): instead, the statement
-- that stores a batch looks its tenant up once and stores nothing when there is none. That
-- look-up is exact only while a tenant that exists goes on existing, which these triggers make
-- a rule rather than a habit; the authenticator's memory of the tenants it found relies on it
-- too.
CREATE FUNCTION tenants_are_never_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'tenants are never deleted, and keep their id (suspend one instead)'
        USING ERRCODE = 'restrict_violation';
END;
$$;

CREATE TRIGGER tenants_are_never_deleted
    BEFORE DELETE OR UPDATE OF id ON tenants
    FOR EACH ROW EXECUTE FUNCTION tenants_are_never_deleted();

CREATE TRIGGER tenants_are_never_truncated
    BEFORE TRUNCATE ON tenants
    FOR EACH STATEMENT EXECUTE FUNCTION tenants_are_never_deleted();
