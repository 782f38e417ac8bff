-- Custody entries are written once and never touched again. The sealer used to give an entry its
-- place in the chain by updating the entry's row (seq, time, previous hash, hash): Postgres wrote
-- the whole row again, details included, with a new entry in each of its three indexes, and ran
-- the append-only trigger, which had to let that one change through. Now the place is a row of
-- its own, `custody_link`, narrow, written once by the sealer, and neither table lets any row be
-- changed or removed.
--
-- The sealer found unsealed entries by a partial index (`WHERE hash IS NULL`). Where autovacuum
-- is off, no page of that index is ever freed: it kept a page for every ~400 entries ever sealed
-- and each call walked them all (15 MB, and 7 ms per call with nothing to seal, after 500,000
-- entries; docs/benchmarks.md, tenth sitting). Now the sealer resumes after the last entry it
-- sealed (`custody_sealer`), in the order of the id of the transaction that wrote each entry
-- (`xid`), then the entry's id, and takes only entries whose transaction is older than every
-- transaction still running (pg_snapshot_xmin of its snapshot). Every such entry that will ever
-- be visible is visible then, so none is passed over. An entry waits while any transaction that
-- took its id before the entry's own transaction did (at its first write) is still open.

-- Seal what is committed, with the sealer of …0006, while no writer can add an entry; the places
-- then move to their links as they are.
LOCK TABLE custody_entry IN ACCESS EXCLUSIVE MODE;
SELECT custody_seal(2147483647);

CREATE TABLE custody_link (
    -- No foreign keys: the sealer takes both from the entry it reads, and a key would lock the
    -- entry's row again, which writes to its page.
    entry_id   bigint      PRIMARY KEY,
    tenant_id  text        NOT NULL,
    seq        bigint      NOT NULL,
    at         timestamptz NOT NULL,
    prev_hash  text        NOT NULL,
    hash       text        NOT NULL,
    CONSTRAINT custody_link_seq_unique UNIQUE (tenant_id, seq)
);
INSERT INTO custody_link (entry_id, tenant_id, seq, at, prev_hash, hash)
SELECT id, tenant_id, seq, at, prev_hash, hash FROM custody_entry ORDER BY tenant_id, seq;

-- The entry keeps what its writer wrote, and the id of the transaction that wrote it, which the
-- application cannot choose (it may insert only the other columns). Entries sealed above have
-- xid 0 and lie behind the sealer's starting point.
DROP INDEX custody_entry_unsealed_idx;
ALTER TABLE custody_entry
    DROP COLUMN seq, DROP COLUMN at, DROP COLUMN prev_hash, DROP COLUMN hash,
    ADD COLUMN xid xid8 NOT NULL DEFAULT '0';
ALTER TABLE custody_entry ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
CREATE INDEX custody_entry_evidence_idx ON custody_entry (tenant_id, evidence_id, id);
CREATE INDEX custody_entry_xid_idx ON custody_entry (xid, id);
REVOKE INSERT ON custody_entry FROM evidence_app;
GRANT INSERT (tenant_id, evidence_id, event, actor_kind, actor_id, actor_name, request_id, details)
    ON custody_entry TO evidence_app;

-- Where the sealer stopped: the last entry it put in a chain, in (xid, id) order. One row.
CREATE TABLE custody_sealer (
    one             boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_xid        xid8    NOT NULL,
    last_id         bigint  NOT NULL,
    -- Entries written by transactions up to this id may have a place already, though they come
    -- after the position (a log restored from another server, below): the sealer asks each of
    -- them for its link. 0: none.
    linked_through  xid8    NOT NULL DEFAULT '0'
);
INSERT INTO custody_sealer (last_xid, last_id) SELECT '0', coalesce(max(id), 0) FROM custody_entry;

-- Nothing written to the log is ever changed or removed, by anyone: entries and links alike.
CREATE OR REPLACE FUNCTION custody_entry_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'custody entries cannot be changed or removed (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER custody_link_is_append_only BEFORE UPDATE OR DELETE ON custody_link
    FOR EACH ROW EXECUTE FUNCTION custody_entry_is_append_only();
CREATE TRIGGER custody_link_is_never_truncated BEFORE TRUNCATE ON custody_link
    FOR EACH STATEMENT EXECUTE FUNCTION custody_entry_is_append_only();

ALTER TABLE custody_link ENABLE ROW LEVEL SECURITY;
CREATE POLICY custody_link_tenant ON custody_link USING (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT ON custody_link TO evidence_app;

-- Write one tenant's chained batch: its links (the n-th entry takes the seq after the head's
-- as it was, plus n - 1) and its new head. Called by custody_seal only.
CREATE FUNCTION custody_link_batch(head custody_head, ids bigint[], ats timestamptz[], prevs text[], hashes text[])
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, public, pg_temp AS $$
BEGIN
    INSERT INTO custody_link (entry_id, tenant_id, seq, at, prev_hash, hash)
    SELECT s.id, head.tenant_id, head.seq - cardinality(ids) + s.n, s.at, s.prev_hash, s.hash
    FROM unnest(ids, ats, prevs, hashes) WITH ORDINALITY AS s(id, at, prev_hash, hash, n);
    UPDATE custody_head h SET seq = head.seq, hash = head.hash WHERE h.tenant_id = head.tenant_id;
    RETURN cardinality(ids);
END
$$;
REVOKE ALL ON FUNCTION custody_link_batch(custody_head, bigint[], timestamptz[], text[], text[]) FROM PUBLIC;

-- Put committed entries in their tenants' chains: the next `max_rows` entries in (xid, id) order
-- after where the last call stopped, of transactions older than any still running, that have no
-- place yet. One sealer at a time: the others return at once while one holds the advisory lock
-- (a batch of a thousand entries takes it about 30 ms), and a call with nothing to seal writes
-- nothing (a row lock would take a transaction id at every call). Per tenant in the batch, it
-- locks the head, chains that tenant's entries in memory, writes their links with one INSERT
-- and moves the head; then it moves the starting point. SECURITY DEFINER: it spans tenants, and
-- the application role may not write links, heads or the starting point.
--
-- Transaction ids belong to one server. A log restored onto another (pg_dump, logical
-- replication) brings a starting point past every id the new server has given out, and entries
-- whose ids mean nothing there. The first call that sees such a starting point locks
-- custody_entry, so that every entry is committed, seals every entry without a place whatever
-- its id, and starts again from the new server's next id; entries it passes over later already
-- have their places.
--
-- Its two queries are planned at every call (EXECUTE), so that a plan made while the log was
-- small is not kept; entries past the position are asked for a link only up to
-- `linked_through`, which only a restore sets. As one query with `NOT EXISTS` for every
-- candidate, the planner, without statistics, read every link into a hash at every call
-- (docs/benchmarks.md, tenth sitting: 6.5 s a call after 500,000 entries).
DROP FUNCTION custody_seal(integer);
CREATE FUNCTION custody_seal(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
DECLARE
    horizon xid8 := pg_snapshot_xmin(pg_current_snapshot());
    restored boolean;
    from_xid xid8;
    from_id bigint;
    check_through xid8;
    candidate record;
    batch bigint[] := '{}';
    batch_xid xid8;
    batch_id bigint;
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
    IF NOT pg_try_advisory_xact_lock(hashtext('custody_seal')) THEN
        RETURN 0;
    END IF;
    SELECT c.last_xid, c.last_id, c.linked_through INTO from_xid, from_id, check_through FROM custody_sealer c;
    restored := from_xid >= pg_snapshot_xmax(pg_current_snapshot());
    IF restored THEN
        LOCK TABLE custody_entry IN ACCESS EXCLUSIVE MODE;
        -- Every entry without a place: no running transaction can hold one back.
        from_xid := '0'; from_id := 0; horizon := NULL; max_rows := NULL;
        check_through := (SELECT coalesce(max(u.xid), '0') FROM custody_entry u);
    END IF;
    -- The batch: the next `max_rows` entries without a place whose transactions have ended, in
    -- (xid, id) order, so the first entry of a transaction still running ends it. Walked in
    -- that order through the index, whatever the planner knows of the tables.
    FOR candidate IN EXECUTE
        'SELECT u.xid, u.id FROM custody_entry u WHERE (u.xid, u.id) > ($1, $2) ORDER BY u.xid, u.id'
        USING from_xid, from_id
    LOOP
        EXIT WHEN candidate.xid >= horizon;
        IF candidate.xid <= check_through THEN
            CONTINUE WHEN EXISTS (SELECT FROM custody_link l WHERE l.entry_id = candidate.id);
        END IF;
        batch := batch || candidate.id;
        batch_xid := candidate.xid;
        batch_id := candidate.id;
        EXIT WHEN cardinality(batch) >= max_rows;
    END LOOP;
    IF cardinality(batch) > 0 THEN
        -- Tenant by tenant (ordered so), each tenant's entries in (xid, id) order.
        FOR e IN EXECUTE
            'SELECT * FROM custody_entry u
             WHERE (u.xid, u.id) > ($1, $2) AND (u.xid, u.id) <= ($3, $4) AND u.id = ANY ($5)
             ORDER BY u.tenant_id, u.xid, u.id'
            USING from_xid, from_id, batch_xid, batch_id, batch
        LOOP
            IF t IS DISTINCT FROM e.tenant_id THEN
                IF t IS NOT NULL THEN
                    sealed := sealed + custody_link_batch(head, ids, ats, prevs, hashes);
                END IF;
                t := e.tenant_id;
                INSERT INTO custody_head (tenant_id, seq, hash) VALUES (t, 0, repeat('0', 64))
                    ON CONFLICT (tenant_id) DO NOTHING;
                SELECT * INTO head FROM custody_head h WHERE h.tenant_id = t FOR UPDATE;
                ids := '{}'; ats := '{}'; prevs := '{}'; hashes := '{}';
            END IF;
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
        sealed := sealed + custody_link_batch(head, ids, ats, prevs, hashes);
    END IF;
    IF restored THEN
        UPDATE custody_sealer
        SET last_xid = pg_snapshot_xmax(pg_current_snapshot()), last_id = 0, linked_through = check_through;
        RAISE WARNING 'custody log restored from another server: % entries sealed, sealing starts again from transaction %',
            sealed, pg_snapshot_xmax(pg_current_snapshot());
    ELSIF sealed > 0 THEN
        UPDATE custody_sealer SET last_xid = batch_xid, last_id = batch_id;
    END IF;
    RETURN sealed;
END
$$;
REVOKE ALL ON FUNCTION custody_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION custody_seal(integer) TO evidence_app;

-- custody_link joins custody_entry wherever entries are read: kept analyzed with it where
-- autovacuum is off (…20261207000007_analyze_stale).
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
          AND s.relname IN ('evidence', 'content', 'content_chunk', 'custody_entry', 'custody_link')
          AND s.n_mod_since_analyze >= 50 + 0.1 * s.n_live_tup
        ORDER BY s.relname
    LOOP
        EXECUTE format('ANALYZE %I', t);
        analyzed := analyzed || t;
    END LOOP;
    RETURN analyzed;
END
$$;

-- What waits for the sealer, over every tenant (the workers' `evidence_custody_unsealed` gauge
-- and their warning): committed entries past its position, how many of them wait for a
-- transaction still running (their own transaction is not older than every running one), and
-- the oldest running transaction when some do (as `pg_stat_activity.backend_xid` shows it).
-- SECURITY DEFINER: it counts every tenant's entries without the application role seeing one.
CREATE FUNCTION custody_unsealed(OUT waiting bigint, OUT held bigint, OUT held_by xid)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $$
    SELECT count(*), count(*) FILTER (WHERE u.xid >= h.horizon),
           CASE WHEN count(*) FILTER (WHERE u.xid >= h.horizon) > 0 THEN xid(min(h.horizon)) END
    FROM custody_sealer c
    CROSS JOIN (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS horizon) h
    JOIN custody_entry u ON (u.xid, u.id) > (c.last_xid, c.last_id)
    WHERE (SELECT l.entry_id FROM custody_link l WHERE l.entry_id = u.id) IS NULL
$$;
REVOKE ALL ON FUNCTION custody_unsealed() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION custody_unsealed() TO evidence_app;
