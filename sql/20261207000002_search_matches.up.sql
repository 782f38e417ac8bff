-- The sha256 of the first `most` chunks of `tenant` matching q, in the order the GIN index
-- gives them (a content once per matching chunk). Only through the index's bitmap: a word in
-- most chunks would otherwise be read by a scan of the primary key or of the table, which
-- reads (and decompresses) the tsvector of every chunk it passes. For search_matches, which
-- runs as the owner; not granted to anyone.
CREATE FUNCTION search_matching_chunks(tenant text, q tsquery, most bigint) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, public
SET enable_seqscan = off
SET enable_indexscan = off
AS $$
    SELECT ch.sha256 FROM content_chunk ch WHERE ch.tenant_id = tenant AND ch.tsv @@ q LIMIT most
$$;
REVOKE ALL ON FUNCTION search_matching_chunks(text, tsquery, bigint) FROM PUBLIC;

-- Search finds its hits here, at most `bound` + 1 of them, instead of every evidence that holds
-- its first clause (search_candidates): a word in nearly every document made every search of it
-- read, check and rank every document (about 8 s for 100,000), where a first page needs far
-- fewer. Like search_candidates, this runs as the tables' owner so that the GIN indexes serve
-- `@@` (row-level security keeps the planner from using an index for an operator that is not
-- leakproof), filters by what the policies filter by, the tenant the transaction set
-- (app.tenant_id; none set: nothing found), and returns ids only, which the caller reads again
-- under the policies.
--
-- clauses: each clause as a tsquery in its text form; excluded: whether each is excluded. An
-- evidence is a hit when it is indexed, passes the filters (the key's cases, a case, a tag, a
-- declared or sniffed type; NULL: none), every required clause occurs in its metadata or in
-- some chunk of its text, and no excluded clause occurs in either.
--
-- How. The lead is the required clause whose matching chunks cost least to go through (only
-- counted when there is a choice: up to 20 × (bound + 1), a phrase's match costing 20, as
-- reading its positions costs about what checking an evidence's chunks does). Then one of two
-- ways, by which reads less to find bound + 1 hits:
-- * from the index (the usual way): the evidence whose metadata matches the lead, then the
--   evidence of the contents among the first matching chunks the GIN index gives (2 × (bound
--   + 1) of them, four times more while too few hits are found and chunks remain), in the
--   order of their sha256;
-- * from the filters, when a case, the key's cases or a tag leave fewer evidence than a
--   twentieth of the lead's cost (both counted only as far as the choice needs): those
--   evidence, newest first, each checked for the lead.
-- Either way each evidence is checked against the other clauses by its own chunks (primary-
-- key probes). found_at numbers the hits; the caller ranks the first `bound` and learns from
-- the (bound + 1)th that there are more.
CREATE FUNCTION search_matches(
    clauses text[], excluded boolean[], key_cases text[], only_case text, only_tag text,
    only_type text, bound integer
) RETURNS TABLE (evidence_id uuid, found_at bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, public
-- Hits are wanted a few at a time, in the order an index gives them. A word in most chunks
-- would otherwise be read by a sequential scan, which reads (and decompresses) every chunk's
-- tsvector to test it, where the GIN index's bitmap needs none; and a hash or merge join would
-- read every evidence of the tenant before the first hit (about 200 ms at 100,000), where a
-- probe of evidence_sha256_idx per content stops with the LIMIT.
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
DECLARE
    tenant constant text := current_setting('app.tenant_id', true);
    required constant integer := cardinality(array_positions(excluded, false));
    narrowed constant boolean := key_cases IS NOT NULL OR only_case IS NOT NULL OR only_tag IS NOT NULL;
    -- An evidence passes: indexed, within the filters, and no clause but the lead ($1) fails
    -- (a required one that occurs nowhere, an excluded one that occurs). Parameters: $1 the
    -- lead's place, $2 clauses, $3 excluded, $4 tenant, $5 key_cases, $6 only_case,
    -- $7 only_tag, $8 only_type, $9 the lead, $10 bound, then each way's own.
    passes constant text := $p$
        e.status = 'indexed'
        AND ($5::text[] IS NULL OR e.case_id = ANY($5)) AND ($6::text IS NULL OR e.case_id = $6)
        AND ($7::text IS NULL OR e.tags @> ARRAY[$7])
        AND ($8::text IS NULL OR e.content_type = $8 OR EXISTS (
            SELECT 1 FROM content c WHERE c.tenant_id = $4 AND c.sha256 = e.sha256 AND c.media_type = $8))
        AND NOT EXISTS (
            SELECT 1 FROM unnest($2, $3) WITH ORDINALITY AS r(q, x, i)
            WHERE r.i <> $1 AND r.x = (e.meta_tsv @@ r.q::tsquery OR EXISTS (
                SELECT 1 FROM content_chunk ch
                WHERE ch.tenant_id = $4 AND ch.sha256 = e.sha256 AND ch.tsv @@ r.q::tsquery)))
    $p$;
    -- What it costs to go through a clause's matching chunks, per chunk: a phrase's matches are
    -- read (every tsvector the index offers, decompressed, checked for the positions), a word's
    -- are taken from the index as they are; reading costs about what checking an evidence does.
    weight integer;
    -- Clauses are counted up to this cost: enough to choose, not to read a common word whole.
    cap constant bigint := 20 * (bound::bigint + 1);
    lead_at integer;
    lead tsquery;
    lead_cost bigint;
    lead_rows bigint;     -- the lead's matching chunks, when counted to the end
    filtered bigint;      -- evidence within the filters, counted up to bound + 1
    n bigint;
    most bigint;
    sample bigint := 2 * (bound::bigint + 1);
    sampled bigint;
    shas text[];
    hits uuid[];
BEGIN
    IF coalesce(tenant, '') = '' OR bound < 0 OR required = 0 THEN
        RETURN;
    END IF;
    IF narrowed THEN
        SELECT count(*) INTO filtered FROM (
            SELECT 1 FROM evidence e
            WHERE e.tenant_id = tenant AND e.status = 'indexed'
              AND (key_cases IS NULL OR e.case_id = ANY(key_cases)) AND (only_case IS NULL OR e.case_id = only_case)
              AND (only_tag IS NULL OR e.tags @> ARRAY[only_tag])
            LIMIT bound + 1) AS f;
    END IF;
    IF required = 1 AND NOT narrowed THEN
        lead_at := array_position(excluded, false);
    ELSE
        FOR i IN 1 .. cardinality(clauses) LOOP
            CONTINUE WHEN excluded[i];
            weight := CASE WHEN strpos(clauses[i], '<') > 0 THEN 20 ELSE 1 END;
            -- Alone, a clause is counted only as far as the choice of way needs.
            most := CASE WHEN required = 1 THEN 20 * filtered / weight + 1 ELSE cap / weight + 1 END;
            SELECT count(*) INTO n FROM search_matching_chunks(tenant, clauses[i]::tsquery, most);
            IF lead_cost IS NULL OR n * weight < lead_cost THEN
                lead_cost := n * weight;
                lead_at := i;
                lead_rows := CASE WHEN n < most THEN n END;
            END IF;
        END LOOP;
    END IF;
    lead := clauses[lead_at]::tsquery;

    IF narrowed AND filtered * 20 < lead_cost THEN
        EXECUTE format($q$
            SELECT array_agg(h.id) FROM (
                SELECT e.id FROM evidence e
                WHERE e.tenant_id = $4 AND %s
                  AND (e.meta_tsv @@ $9 OR EXISTS (
                      SELECT 1 FROM content_chunk ch
                      WHERE ch.tenant_id = $4 AND ch.sha256 = e.sha256 AND ch.tsv @@ $9))
                ORDER BY e.created_at DESC, e.id DESC LIMIT $10 + 1) AS h
        $q$, passes)
        INTO hits
        USING lead_at, clauses, excluded, tenant, key_cases, only_case, only_tag, only_type, lead, bound;
    ELSE
        -- A lead counted to the end is read whole at once.
        sample := greatest(sample, lead_rows + 1);
        LOOP
            SELECT array_agg(DISTINCT s), count(*) INTO shas, sampled
            FROM search_matching_chunks(tenant, lead, sample) AS s;
            EXECUTE format($q$
                SELECT array_agg(h.id) FROM (
                    SELECT e.id FROM evidence e WHERE e.tenant_id = $4 AND e.meta_tsv @@ $9 AND %1$s
                    UNION ALL
                    -- Each content's evidence by evidence_sha256_idx (OFFSET 0 keeps the
                    -- planner from comparing every sha256 with every evidence of a case).
                    SELECT e.id FROM unnest($11) AS s(sha256)
                    CROSS JOIN LATERAL (
                        SELECT * FROM evidence e WHERE e.tenant_id = $4 AND e.sha256 = s.sha256 OFFSET 0) AS e
                    WHERE NOT e.meta_tsv @@ $9 AND %1$s
                    LIMIT $10 + 1) AS h
            $q$, passes)
            INTO hits
            USING lead_at, clauses, excluded, tenant, key_cases, only_case, only_tag, only_type, lead, bound, shas;
            EXIT WHEN cardinality(hits) > bound OR sampled < sample;
            sample := sample * 4;
        END LOOP;
    END IF;
    RETURN QUERY SELECT h.id, h.n FROM unnest(hits) WITH ORDINALITY AS h(id, n);
END
$$;
REVOKE ALL ON FUNCTION search_matches(text[], boolean[], text[], text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_matches(text[], boolean[], text[], text, text, text, integer) TO evidence_app;

DROP FUNCTION search_candidates(tsquery);
