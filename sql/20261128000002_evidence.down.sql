DROP TABLE evidence;
DROP TABLE content_chunk;
DROP TABLE content;
