-- The custody log: an append-only, hash-chained record of everything that happened to each
-- evidence, one chain per tenant, written in the same transaction as the change it records.
-- ARCHITECTURE.md ("Custody") documents the encoding exactly, so anyone can recompute a chain.

-- Who collected the evidence, when and from where, as the uploader declares it; fixed once the
-- bytes are uploaded (the trigger below).
ALTER TABLE evidence
    ADD COLUMN custodian text,
    ADD COLUMN collected_at timestamptz,
    ADD COLUMN source text;

CREATE FUNCTION evidence_custody_fields_are_kept() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> 'awaiting_upload'
       AND (NEW.custodian IS DISTINCT FROM OLD.custodian OR NEW.collected_at IS DISTINCT FROM OLD.collected_at
            OR NEW.source IS DISTINCT FROM OLD.source) THEN
        RAISE EXCEPTION 'the custody fields of evidence % are fixed once its bytes are uploaded', OLD.id
            USING ERRCODE = 'integrity_constraint_violation';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER evidence_custody_fields_are_kept BEFORE UPDATE OF custodian, collected_at, source ON evidence
    FOR EACH ROW EXECUTE FUNCTION evidence_custody_fields_are_kept();

-- One entry per event. `seq` numbers a tenant's chain from 1 without gaps; `hash` is
-- sha256(encoding of the entry, which starts with `prev_hash`), both lower-case hex; the first
-- entry's `prev_hash` is 64 zeros. `seq`, `at`, `prev_hash` and `hash` are set by the sealer
-- (custody_seal below), moments after the writing transaction commits.
CREATE TABLE custody_entry (
    id           bigserial   PRIMARY KEY,
    tenant_id    text        NOT NULL REFERENCES tenant (id),
    seq          bigint,
    evidence_id  uuid,
    event        text        NOT NULL,
    -- `api_key` (the key's id and name), `worker` (the ingest job's id) or `operator` (the
    -- database role that changed a job by hand, see evidence_follows_ingest_job).
    actor_kind   text        NOT NULL,
    actor_id     text        NOT NULL,
    actor_name   text        NOT NULL,
    request_id   text,
    -- Database time at which the entry took its place in the chain.
    at           timestamptz,
    -- A JSON object, kept as the exact text that was hashed.
    details      text        NOT NULL,
    prev_hash    text,
    hash         text,
    CONSTRAINT custody_entry_seq_unique UNIQUE (tenant_id, seq),
    CONSTRAINT custody_entry_actor_kind CHECK (actor_kind IN ('api_key', 'worker', 'operator')),
    CONSTRAINT custody_entry_details_json CHECK (details::jsonb IS NOT NULL)
);
CREATE INDEX custody_entry_evidence_idx ON custody_entry (tenant_id, evidence_id, seq);

-- The last entry of each tenant's chain; the sealer locks it while it chains a batch.
CREATE TABLE custody_head (
    tenant_id  text   PRIMARY KEY REFERENCES tenant (id),
    seq        bigint NOT NULL,
    hash       text   NOT NULL
);

-- The bytes an entry's hash covers: each field as `<length in bytes>:<value>\n`, in this order,
-- an absent value as the empty string. Used by custody_seal; verifiers rebuild it alike.
CREATE FUNCTION custody_encoding(
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

-- Write one entry in the caller's transaction (with the caller's rights: row-level security
-- keeps each tenant to its own log). The sealer puts it in the chain once it is committed.
CREATE FUNCTION custody_append(
    p_tenant text, p_evidence uuid, p_event text, p_actor_kind text, p_actor_id text, p_actor_name text,
    p_request_id text, p_details jsonb
) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO custody_entry (tenant_id, evidence_id, event, actor_kind, actor_id, actor_name, request_id, details)
    VALUES (p_tenant, p_evidence, p_event, p_actor_kind, p_actor_id, p_actor_name, p_request_id, p_details::text)
$$;

-- Entries not yet in the chain, found fast.
CREATE INDEX custody_entry_unsealed_idx ON custody_entry (tenant_id, id) WHERE hash IS NULL;

-- Put committed entries in their tenant's chain, oldest first, at most `max_rows` per tenant per
-- call: lock the tenant's head, give each entry the next seq, the time and its hash, move the
-- head. The workers call it in a loop (custody::run_sealer); one tenant's writers never wait
-- for each other, and a batch of entries costs one lock and one commit. A sealer that finds a
-- tenant's head locked by another sealer skips that tenant. SECURITY DEFINER: it spans tenants,
-- and the application role may not update entries or the head itself.
CREATE FUNCTION custody_seal(max_rows integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
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
REVOKE ALL ON FUNCTION custody_seal(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION custody_seal(integer) TO evidence_app;

-- Entries are never changed or removed, by anyone: the application role is not granted it, and
-- this trigger refuses it to every other role too (a superuser who disables it is found out by
-- verification).
CREATE FUNCTION custody_entry_is_append_only() RETURNS trigger
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
CREATE TRIGGER custody_entry_is_append_only BEFORE UPDATE OR DELETE ON custody_entry
    FOR EACH ROW EXECUTE FUNCTION custody_entry_is_append_only();
CREATE TRIGGER custody_entry_is_never_truncated BEFORE TRUNCATE ON custody_entry
    FOR EACH STATEMENT EXECUTE FUNCTION custody_entry_is_append_only();

ALTER TABLE custody_entry ENABLE ROW LEVEL SECURITY;
ALTER TABLE custody_head ENABLE ROW LEVEL SECURITY;
CREATE POLICY custody_entry_tenant ON custody_entry USING (tenant_id = current_setting('app.tenant_id', true));
CREATE POLICY custody_head_tenant ON custody_head USING (tenant_id = current_setting('app.tenant_id', true));
GRANT SELECT, INSERT ON custody_entry TO evidence_app;
GRANT USAGE ON SEQUENCE custody_entry_id_seq TO evidence_app;
GRANT SELECT ON custody_head TO evidence_app;

-- An operator's cancel or retry of an ingest job (which moves its evidence, see
-- …0002_evidence_follows_its_job) is recorded too, in the same transaction, naming the
-- database role that made it.
CREATE OR REPLACE FUNCTION evidence_follows_ingest_job() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public AS $$
DECLARE
    moved evidence%ROWTYPE;
BEGIN
    IF NEW.state = 'cancelled' THEN
        UPDATE evidence
        SET status = 'index_error', attempts = NEW.attempt, updated_at = now(),
            last_error = format('the ingest job (%s) was cancelled by an operator; reindex to try again', NEW.id)
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'queued'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'failed', 'operator', session_user::text,
                                   format('job %s by hand', NEW.id), NULL,
                                   jsonb_build_object('reason', moved.last_error, 'attempts', NEW.attempt));
        END IF;
    ELSE
        UPDATE evidence
        SET status = 'queued', queued_at = now(), updated_at = now(), attempts = 0, last_error = NULL
        WHERE id = (NEW.payload ->> 'evidence_id')::uuid AND job_id = NEW.id AND status = 'index_error'
        RETURNING * INTO moved;
        IF FOUND THEN
            PERFORM custody_append(moved.tenant_id, moved.id, 'reindexed', 'operator', session_user::text,
                                   format('job %s by hand', NEW.id), NULL,
                                   jsonb_build_object('from', 'index_error', 'job_id', NEW.id));
        END IF;
    END IF;
    RETURN NULL;
END
$$;
