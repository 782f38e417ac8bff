-- pg_temp last in the search path of every SECURITY DEFINER function. PostgreSQL searches the
-- session's temporary schema first unless the path names it, so a temporary table of the
-- caller's named like one of ours (`api_key`, `evidence`) was read in its stead, with the
-- owner's rights: a forged key row, say, that authenticate_api_key would have answered with.
-- (search_matches and search_matching_chunks are made with it.)
ALTER FUNCTION authenticate_api_key(text, bytea) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION evidence_follows_ingest_job() SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION enter_as_api_key(uuid) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION custody_seal(integer) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION fixity_due(interval, integer) SET search_path = pg_catalog, public, pg_temp;
ALTER FUNCTION uploads_to_expire(interval, integer) SET search_path = pg_catalog, public, pg_temp;
