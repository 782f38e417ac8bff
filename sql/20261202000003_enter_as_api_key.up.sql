-- Every transaction of a request starts with this: it names the request's API key, fails with
-- SQLSTATE 28000 (invalid_authorization_specification) when that key was revoked, and sets the
-- key's tenant for the rest of the transaction (what row-level security reads). A process may
-- remember for a minute that a key is valid, to spare each request the full check; a key
-- revoked since is still refused at once, whichever process the request reaches.
--
-- The service sends `SELECT enter_as_api_key('<id>'); BEGIN` as one message: the call runs in
-- the transaction that BEGIN then makes explicit, and when it fails no transaction is left open
-- on the connection (as one would be after `BEGIN; SELECT enter_as_api_key(...)`).
--
-- SECURITY DEFINER: no tenant is set yet, and the application role sees no key without one.
CREATE FUNCTION enter_as_api_key(key uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    key_tenant text;
BEGIN
    SELECT a.tenant_id INTO key_tenant FROM api_key a WHERE a.id = key AND a.revoked_at IS NULL;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'this API key was revoked' USING ERRCODE = 'invalid_authorization_specification';
    END IF;
    PERFORM set_config('app.tenant_id', key_tenant, true);
END
$$;
REVOKE ALL ON FUNCTION enter_as_api_key(uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION enter_as_api_key(uuid) TO evidence_app;
