-- The sha256 of the first `most` chunks of `tenant` matching q, in the order the GIN index
-- gives them (a content once per matching chunk). Only through the index's bitmap: a word in
-- most chunks would otherwise be read by a scan of the primary key or of the table, which
-- reads (and decompresses) the tsvector of every chunk it passes. For search_matches, which
-- runs as the owner; not granted to anyone.
CREATE FUNCTION search_matching_chunks(tenant text, q tsquery, most bigint) RETURNS SETOF text
LANGUAGE sql STABLE
SET search_path = pg_catalog, public, pg_temp
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
-- counted when there is a choice, and only as far as the choice needs; a phrase's match costs
-- 20, as reading its positions costs about what checking an evidence's chunks does). Then one
-- of two ways, by which reads less to find bound + 1 hits:
-- * from the filters, when a case, the key's cases or a tag leave fewer evidence than a
--   twentieth of the lead's cost (the evidence counted up to 4 × (bound + 1)): the newest of
--   them, each checked for the lead; when 4 × (bound + 1) of them hold too few hits and there
--   are more, the other way;
-- * from the index: the evidence whose metadata matches the lead, then the evidence of the
--   contents among the first matching chunks the GIN index gives (2 × (bound + 1) of them,
--   four times more while too few hits are found and chunks remain), in the order of their
--   sha256. The other clauses' words narrow those contents first: an excluded word's contents
--   are left out, a required word's (read to the end) are the only ones kept, with those of
--   the evidence whose metadata holds it.
-- Either way each evidence is checked against the other clauses by its own chunks (primary-
-- key probes; not for an excluded word whose contents were all left out). found_at numbers
-- the hits; the caller ranks the first `bound` and learns from the (bound + 1)th that there
-- are more.
CREATE FUNCTION search_matches(
    clauses text[], excluded boolean[], key_cases text[], only_case text, only_tag text,
    only_type text, bound integer
) RETURNS TABLE (evidence_id uuid, found_at bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER
-- pg_temp last: a temporary table or function of the caller's cannot stand in for ours.
SET search_path = pg_catalog, public, pg_temp
-- Hits are wanted a few at a time, in the order an index gives them. A word in most chunks
-- would otherwise be read by a sequential scan, which reads (and decompresses) every chunk's
-- tsvector to test it, where the GIN index's bitmap needs none; and a hash or merge join would
-- read every evidence of the tenant before the first hit (about 200 ms at 100,000), where a
-- probe of evidence_sha256_idx per content stops with the LIMIT.
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
-- Metadata matches first, in one process: a parallel append could interleave the two.
SET max_parallel_workers_per_gather = 0
AS $$
DECLARE
    tenant constant text := current_setting('app.tenant_id', true);
    required constant integer := coalesce(cardinality(array_positions(excluded, false)), 0);
    narrowed constant boolean := key_cases IS NOT NULL OR only_case IS NOT NULL OR only_tag IS NOT NULL;
    -- The statements below are run with EXECUTE, all with the same parameters: $1 the lead's
    -- place, $2 clauses, $3 excluded, $4 tenant, $5 key_cases, $6 only_case, $7 only_tag,
    -- $8 only_type, $9 the lead, $10 bound, $11 for each clause whether its chunks are already
    -- accounted for (an excluded clause whose contents were all taken out beforehand: only the
    -- metadata is left to check), $12 budget, then each way's own.
    -- An evidence is within the filters that have an index to start from: indexed, in the key's
    -- cases, the case, with the tag.
    within constant text := $w$
        e.status = 'indexed'
        AND ($5::text[] IS NULL OR e.case_id = ANY($5)) AND ($6::text IS NULL OR e.case_id = $6)
        AND ($7::text IS NULL OR e.tags @> ARRAY[$7])
    $w$;
    -- ... and of the type, and no clause but the lead fails (a required one that occurs nowhere,
    -- an excluded one that occurs).
    rest constant text := $r$
        ($8::text IS NULL OR e.content_type = $8 OR EXISTS (
            SELECT 1 FROM content c WHERE c.tenant_id = $4 AND c.sha256 = e.sha256 AND c.media_type = $8))
        AND NOT EXISTS (
            SELECT 1 FROM unnest($2, $3) WITH ORDINALITY AS r(q, x, i)
            WHERE r.i <> $1 AND r.x = (e.meta_tsv @@ r.q::tsquery OR (NOT coalesce(($11::boolean[])[r.i], false) AND EXISTS (
                SELECT 1 FROM content_chunk ch
                WHERE ch.tenant_id = $4 AND ch.sha256 = e.sha256 AND ch.tsv @@ r.q::tsquery))))
    $r$;
    passes constant text := within || ' AND ' || rest;
    -- What it costs to go through a clause's matching chunks, per chunk: a phrase's matches are
    -- read (every tsvector the index offers, decompressed, checked for the positions), a word's
    -- are taken from the index as they are; reading costs about what checking an evidence does.
    weight integer;
    -- Clauses are counted up to this cost: enough to choose, not to read a common word whole.
    cap constant bigint := 20 * (bound::bigint + 1);
    -- The most evidence read newest first before the index is asked instead.
    budget constant bigint := 4 * (bound::bigint + 1);
    lead_at integer;
    lead tsquery;
    lead_cost bigint;
    lead_rows bigint;     -- the lead's matching chunks, when counted to the end
    filtered bigint := 0; -- evidence within the filters, counted up to budget + 1
    n bigint;
    most bigint;
    sample bigint := 2 * (bound::bigint + 1);
    sampled bigint;
    shas text[];
    found text[];
    keep text[];          -- contents that may hold every other required clause (NULL: any)
    drop text[] := '{}';  -- contents known to hold an excluded clause
    known boolean[];      -- $11 of the statements run with EXECUTE
    newest_first boolean;
    hits uuid[];
BEGIN
    IF coalesce(tenant, '') = '' OR bound < 0 OR required = 0 THEN
        RETURN;
    END IF;
    IF narrowed THEN
        EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM evidence e WHERE e.tenant_id = $4 AND %s LIMIT $12 + 1) f',
                       within)
        INTO filtered
        USING lead_at, clauses, excluded, tenant, key_cases, only_case, only_tag, only_type, lead, bound, known,
              budget;
    END IF;
    IF required = 1 AND NOT narrowed THEN
        lead_at := array_position(excluded, false);
    ELSE
        FOR i IN 1 .. cardinality(clauses) LOOP
            CONTINUE WHEN excluded[i];
            weight := CASE WHEN strpos(clauses[i], '<') > 0 THEN 20 ELSE 1 END;
            -- Counted only as far as a choice needs: of the way (against the filters), of the
            -- lead (against the cheapest so far).
            most := CASE WHEN required = 1 THEN 20 * filtered / weight + 1
                         ELSE greatest(cap, 20 * filtered) / weight + 1 END;
            most := least(most, lead_cost / weight + 1);
            SELECT count(*) INTO n FROM search_matching_chunks(tenant, clauses[i]::tsquery, most);
            IF lead_cost IS NULL OR n * weight < lead_cost THEN
                lead_cost := n * weight;
                lead_at := i;
                lead_rows := CASE WHEN n < most THEN n END;
            END IF;
        END LOOP;
    END IF;
    lead := clauses[lead_at]::tsquery;

    newest_first := narrowed AND filtered * 20 < lead_cost;
    IF newest_first THEN
        -- The newest `budget` evidence within the filters (all of them, when no more): enough
        -- hits among them end the search; else the index is asked, as below.
        EXECUTE format($q$
            SELECT array_agg(h.id ORDER BY h.created_at DESC, h.id DESC) FROM (
                SELECT e.id, e.created_at FROM (
                    SELECT * FROM evidence e WHERE e.tenant_id = $4 AND %s
                    ORDER BY e.created_at DESC, e.id DESC LIMIT $12) AS e
                WHERE %s
                  AND (e.meta_tsv @@ $9 OR EXISTS (
                      SELECT 1 FROM content_chunk ch
                      WHERE ch.tenant_id = $4 AND ch.sha256 = e.sha256 AND ch.tsv @@ $9))
                LIMIT $10::bigint + 1) AS h
        $q$, within, rest)
        INTO hits
        USING lead_at, clauses, excluded, tenant, key_cases, only_case, only_tag, only_type, lead, bound, known,
              budget;
    END IF;
    -- Newest first is done when it found more than `bound` or read every evidence within the
    -- filters.
    IF NOT (newest_first AND (coalesce(cardinality(hits), 0) > bound OR filtered <= budget)) THEN
        -- The other clauses' words (not phrases: reading those costs what checking does), each
        -- read from the index up to the cap, narrow the lead's contents before any is checked:
        -- an excluded one's contents are out (a partial list is as good); a required one read
        -- to the end keeps only the contents that hold it, or whose evidence's metadata does.
        FOR i IN 1 .. cardinality(clauses) LOOP
            CONTINUE WHEN i = lead_at OR strpos(clauses[i], '<') > 0;
            SELECT array_agg(s), count(*) INTO found, n
            FROM search_matching_chunks(tenant, clauses[i]::tsquery, cap + 1) AS s;
            IF excluded[i] THEN
                drop := drop || found;
                known[i] := n <= cap;
            ELSIF n <= cap THEN
                found := found || ARRAY(
                    SELECT e.sha256 FROM evidence e WHERE e.tenant_id = tenant AND e.meta_tsv @@ clauses[i]::tsquery);
                keep := CASE WHEN keep IS NULL THEN found
                             ELSE ARRAY(SELECT unnest(keep) INTERSECT SELECT unnest(found)) END;
            END IF;
        END LOOP;
        -- A lead counted to the end is read whole at once.
        sample := greatest(sample, lead_rows + 1);
        LOOP
            SELECT array_agg(DISTINCT s), count(*) INTO shas, sampled
            FROM search_matching_chunks(tenant, lead, sample) AS s;
            shas := ARRAY(
                SELECT unnest(shas) INTERSECT SELECT unnest(coalesce(keep, shas))
                EXCEPT SELECT unnest(drop) ORDER BY 1);
            EXECUTE format($q$
                SELECT array_agg(h.id) FROM (
                    SELECT e.id FROM evidence e WHERE e.tenant_id = $4 AND e.meta_tsv @@ $9 AND %1$s
                    UNION ALL
                    -- Each content's evidence by evidence_sha256_idx (OFFSET 0 keeps the
                    -- planner from comparing every sha256 with every evidence of a case).
                    SELECT e.id FROM unnest($13) AS s(sha256)
                    CROSS JOIN LATERAL (
                        SELECT * FROM evidence e WHERE e.tenant_id = $4 AND e.sha256 = s.sha256 OFFSET 0) AS e
                    WHERE NOT e.meta_tsv @@ $9 AND %1$s
                    LIMIT $10::bigint + 1) AS h
            $q$, passes)
            INTO hits
            USING lead_at, clauses, excluded, tenant, key_cases, only_case, only_tag, only_type, lead, bound, known,
                  budget, shas;
            EXIT WHEN coalesce(cardinality(hits), 0) > bound OR sampled < sample;
            sample := sample * 4;
        END LOOP;
    END IF;
    RETURN QUERY SELECT h.id, h.n FROM unnest(hits) WITH ORDINALITY AS h(id, n);
END
$$;
REVOKE ALL ON FUNCTION search_matches(text[], boolean[], text[], text, text, text, integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION search_matches(text[], boolean[], text[], text, text, text, integer) TO evidence_app;

DROP FUNCTION search_candidates(tsquery);
