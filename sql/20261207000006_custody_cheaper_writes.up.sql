-- The custody log's writes made cheaper, with the same chain: the same entries, the same
-- encoding, the same hashes (the tests recompute them in Rust).
--
-- custody_encoding becomes one expression, which Postgres inlines into the statement that calls
-- it instead of running a query (unnest, string_agg) for every entry. The bytes are the same:
-- each field as `<length in bytes>:<value>\n` in the same order, a NULL field left out as
-- string_agg left it out (custody_seal passes none). STABLE rather than IMMUTABLE: to_char and
-- convert_to are stable, and Postgres does not inline a function declared immutable whose body
-- is not.
CREATE OR REPLACE FUNCTION custody_encoding(
    prev_hash text, seq bigint, tenant_id text, evidence_id uuid, event text, actor_kind text,
    actor_id text, actor_name text, request_id text, at timestamptz, details text
) RETURNS bytea
LANGUAGE sql STABLE AS $$
    SELECT convert_to(
        coalesce(octet_length(prev_hash)::text || ':' || prev_hash || E'\n', '')
        || coalesce(octet_length(seq::text)::text || ':' || seq::text || E'\n', '')
        || coalesce(octet_length(tenant_id)::text || ':' || tenant_id || E'\n', '')
        || coalesce(octet_length(coalesce(evidence_id::text, ''))::text || ':' || coalesce(evidence_id::text, '') || E'\n', '')
        || coalesce(octet_length(event)::text || ':' || event || E'\n', '')
        || coalesce(octet_length(actor_kind)::text || ':' || actor_kind || E'\n', '')
        || coalesce(octet_length(actor_id)::text || ':' || actor_id || E'\n', '')
        || coalesce(octet_length(actor_name)::text || ':' || actor_name || E'\n', '')
        || coalesce(octet_length(coalesce(request_id, ''))::text || ':' || coalesce(request_id, '') || E'\n', '')
        || coalesce(octet_length(to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))::text || ':' || to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') || E'\n', '')
        || coalesce(octet_length(details)::text || ':' || details || E'\n', ''),
        'UTF8')
$$;

-- custody_seal chains a tenant's batch in memory, then writes it with one UPDATE instead of one
-- per entry. Locking, order, seq, time and hash are as before.
CREATE OR REPLACE FUNCTION custody_seal(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    t text;
    head custody_head%ROWTYPE;
    e custody_entry%ROWTYPE;
    entry_at timestamptz;
    ids bigint[];
    ats timestamptz[];
    prevs text[];
    hashes text[];
    sealed integer := 0;
BEGIN
    FOR t IN SELECT DISTINCT u.tenant_id FROM custody_entry u WHERE u.hash IS NULL LOOP
        INSERT INTO custody_head (tenant_id, seq, hash) VALUES (t, 0, repeat('0', 64))
            ON CONFLICT (tenant_id) DO NOTHING;
        SELECT * INTO head FROM custody_head h WHERE h.tenant_id = t FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        ids := '{}'; ats := '{}'; prevs := '{}'; hashes := '{}';
        FOR e IN SELECT * FROM custody_entry u WHERE u.tenant_id = t AND u.hash IS NULL ORDER BY u.id LIMIT max_rows LOOP
            entry_at := clock_timestamp();
            ids := ids || e.id;
            ats := ats || entry_at;
            prevs := prevs || head.hash;
            head.seq := head.seq + 1;
            head.hash := encode(sha256(custody_encoding(
                head.hash, head.seq, e.tenant_id, e.evidence_id, e.event, e.actor_kind, e.actor_id,
                e.actor_name, e.request_id, entry_at, e.details)), 'hex');
            hashes := hashes || head.hash;
        END LOOP;
        -- The n-th entry of the batch takes the seq after the head's as it was, plus n - 1.
        UPDATE custody_entry u
        SET seq = head.seq - cardinality(ids) + s.n, at = s.at, prev_hash = s.prev_hash, hash = s.hash
        FROM unnest(ids, ats, prevs, hashes) WITH ORDINALITY AS s(id, at, prev_hash, hash, n)
        WHERE u.id = s.id;
        UPDATE custody_head h SET seq = head.seq, hash = head.hash WHERE h.tenant_id = t;
        sealed := sealed + cardinality(ids);
    END LOOP;
    RETURN sealed;
END
$$;
