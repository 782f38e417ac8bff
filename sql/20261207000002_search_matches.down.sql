CREATE FUNCTION search_candidates(q tsquery) RETURNS SETOF uuid
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public AS $$
    SELECT e.id FROM evidence e
    WHERE e.tenant_id = current_setting('app.tenant_id', true) AND e.meta_tsv @@ q
    UNION
    SELECT e.id FROM content_chunk ch
    JOIN evidence e ON e.tenant_id = ch.tenant_id AND e.sha256 = ch.sha256
    WHERE ch.tenant_id = current_setting('app.tenant_id', true) AND ch.tsv @@ q
$$;
REVOKE ALL ON FUNCTION search_candidates(tsquery) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_candidates(tsquery) TO evidence_app;

DROP FUNCTION search_matches(text[], boolean[], text[], text, text, text, integer);
DROP FUNCTION search_matching_chunks(text, tsquery, bigint);
