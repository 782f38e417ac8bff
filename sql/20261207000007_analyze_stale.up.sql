-- Statistics for the evidence tables on a server without autovacuum. A pooled connection keeps
-- the generic plan it made for a prepared statement; one made while `evidence` was empty and
-- never analyzed can find a row by `tenant_id` alone and read every row of the tenant at each
-- call (docs/benchmarks.md, 2026-12-07, seventh sitting). Autovacuum's analyze fixes that after
-- the first 50 rows and 10 %; where it is off, the workers call this function every minute:
-- it analyzes each of these tables changed by at least as much since its last analyze (which
-- also makes every session plan its statements on them again). SECURITY DEFINER: only the owner
-- may analyze. A transaction-level advisory lock keeps it to one worker at a time.
CREATE FUNCTION analyze_stale_tables() RETURNS text[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    t text;
    analyzed text[] := '{}';
BEGIN
    IF NOT pg_try_advisory_xact_lock(hashtext('analyze_stale_tables')) THEN
        RETURN analyzed;
    END IF;
    FOR t IN
        SELECT s.relname FROM pg_stat_user_tables s
        WHERE s.schemaname = 'public'
          AND s.relname IN ('evidence', 'content', 'content_chunk', 'custody_entry')
          AND s.n_mod_since_analyze >= 50 + 0.1 * s.n_live_tup
        ORDER BY s.relname
    LOOP
        EXECUTE format('ANALYZE %I', t);
        analyzed := analyzed || t;
    END LOOP;
    RETURN analyzed;
END
$$;
REVOKE ALL ON FUNCTION analyze_stale_tables() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION analyze_stale_tables() TO evidence_app;
