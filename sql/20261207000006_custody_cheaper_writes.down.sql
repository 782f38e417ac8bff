-- The functions as …0005_custody made them (custody_seal with …0003's search path).
CREATE OR REPLACE FUNCTION custody_encoding(
    prev_hash text, seq bigint, tenant_id text, evidence_id uuid, event text, actor_kind text,
    actor_id text, actor_name text, request_id text, at timestamptz, details text
) RETURNS bytea
LANGUAGE sql IMMUTABLE AS $$
    SELECT convert_to(string_agg(octet_length(f) || ':' || f || E'\n', '' ORDER BY n), 'UTF8')
    FROM unnest(ARRAY[
        prev_hash, seq::text, tenant_id, coalesce(evidence_id::text, ''), event, actor_kind, actor_id,
        actor_name, coalesce(request_id, ''),
        to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), details
    ]) WITH ORDINALITY AS t(f, n)
$$;

CREATE OR REPLACE FUNCTION custody_seal(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    t text;
    head custody_head%ROWTYPE;
    e custody_entry%ROWTYPE;
    entry_at timestamptz;
    entry_hash text;
    sealed integer := 0;
BEGIN
    FOR t IN SELECT DISTINCT u.tenant_id FROM custody_entry u WHERE u.hash IS NULL LOOP
        INSERT INTO custody_head (tenant_id, seq, hash) VALUES (t, 0, repeat('0', 64))
            ON CONFLICT (tenant_id) DO NOTHING;
        SELECT * INTO head FROM custody_head h WHERE h.tenant_id = t FOR UPDATE SKIP LOCKED;
        CONTINUE WHEN NOT FOUND;
        FOR e IN SELECT * FROM custody_entry u WHERE u.tenant_id = t AND u.hash IS NULL ORDER BY u.id LIMIT max_rows LOOP
            entry_at := clock_timestamp();
            entry_hash := encode(sha256(custody_encoding(
                head.hash, head.seq + 1, e.tenant_id, e.evidence_id, e.event, e.actor_kind, e.actor_id,
                e.actor_name, e.request_id, entry_at, e.details)), 'hex');
            UPDATE custody_entry u SET seq = head.seq + 1, at = entry_at, prev_hash = head.hash, hash = entry_hash
            WHERE u.id = e.id;
            head.seq := head.seq + 1;
            head.hash := entry_hash;
            sealed := sealed + 1;
        END LOOP;
        UPDATE custody_head h SET seq = head.seq, hash = head.hash WHERE h.tenant_id = t;
    END LOOP;
    RETURN sealed;
END
$$;

