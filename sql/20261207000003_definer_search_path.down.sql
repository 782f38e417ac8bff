ALTER FUNCTION authenticate_api_key(text, bytea) SET search_path = pg_catalog, public;
ALTER FUNCTION evidence_follows_ingest_job() SET search_path = pg_catalog, public;
ALTER FUNCTION enter_as_api_key(uuid) SET search_path = pg_catalog, public;
ALTER FUNCTION custody_seal(integer) SET search_path = pg_catalog, public;
ALTER FUNCTION fixity_due(interval, integer) SET search_path = pg_catalog, public;
ALTER FUNCTION uploads_to_expire(interval, integer) SET search_path = pg_catalog, public;
