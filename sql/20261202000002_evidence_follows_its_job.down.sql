DROP TRIGGER evidence_follows_ingest_job ON job;
DROP FUNCTION evidence_follows_ingest_job();
