-- Entries sealed in place again, as …0005 and …0006 made them: each link's fields go back onto
-- its entry, the partial index of unsealed entries returns, and the sealer updates entries.

-- In the order a sealer takes them, so that a sealer running meanwhile cannot deadlock with this.
LOCK TABLE custody_sealer, custody_entry IN ACCESS EXCLUSIVE MODE;
-- What this sealer may seal now; entries held back by a transaction still running on the
-- server stay unsealed, and the sealer restored below takes them.
SELECT custody_seal(2147483647);
DROP FUNCTION custody_unsealed();
DROP FUNCTION custody_seal(integer);
DROP FUNCTION custody_link_batch(custody_head, bigint[], timestamptz[], text[], text[]);

CREATE OR REPLACE FUNCTION custody_entry_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- The one change allowed: sealing an entry not yet in the chain (custody_seal).
    IF TG_OP = 'UPDATE' AND OLD.hash IS NULL THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'custody entries cannot be changed or removed (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

ALTER TABLE custody_entry
    ADD COLUMN seq bigint, ADD COLUMN at timestamptz, ADD COLUMN prev_hash text, ADD COLUMN hash text;
UPDATE custody_entry e SET seq = l.seq, at = l.at, prev_hash = l.prev_hash, hash = l.hash
FROM custody_link l WHERE l.entry_id = e.id;
DROP INDEX custody_entry_evidence_idx;
ALTER TABLE custody_entry DROP COLUMN xid, ADD CONSTRAINT custody_entry_seq_unique UNIQUE (tenant_id, seq);
CREATE INDEX custody_entry_evidence_idx ON custody_entry (tenant_id, evidence_id, seq);
CREATE INDEX custody_entry_unsealed_idx ON custody_entry (tenant_id, id) WHERE hash IS NULL;
REVOKE INSERT ON custody_entry FROM evidence_app;
GRANT INSERT ON custody_entry TO evidence_app;
DROP TABLE custody_link;
DROP TABLE custody_sealer;

-- The sealer of …0006.
CREATE FUNCTION custody_seal(max_rows integer) RETURNS integer
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
REVOKE ALL ON FUNCTION custody_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION custody_seal(integer) TO evidence_app;

-- analyze_stale_tables as …20261207000007 made it.
CREATE OR REPLACE FUNCTION analyze_stale_tables() RETURNS text[]
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
