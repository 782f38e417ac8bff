-- Uploads larger than the API's part size (UPLOAD_PART_BYTES) go to the store in parts: at
-- create the API starts an S3 multipart upload and keeps its id and part size here, hands out
-- one presigned PUT per part, and completes it when the client reports the parts' ETags. The
-- expiry sweep aborts an upload still open when its window closes, so no part is left behind.
ALTER TABLE evidence
    ADD COLUMN upload_id text,
    ADD COLUMN upload_part_bytes bigint,
    ADD CONSTRAINT evidence_upload_parts_check
        CHECK ((upload_id IS NULL) = (upload_part_bytes IS NULL) AND (upload_part_bytes IS NULL OR upload_part_bytes > 0));
