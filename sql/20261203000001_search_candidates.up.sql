-- The evidence of this transaction's tenant whose metadata or any chunk matches q, found
-- through the GIN indexes. Row-level security keeps the planner from using an index for a
-- predicate whose operator is not leakproof, and `tsvector @@ tsquery` is not: under the
-- policies, every search read the tsvector of every chunk of the tenant (about 1 s for 200,000
-- chunks). This function runs as the tables' owner, to whom the policies do not apply, and
-- filters by what the policies filter by: the tenant the transaction set (app.tenant_id). With
-- none set it finds nothing. The caller checks the rest per candidate, under the policies.
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
