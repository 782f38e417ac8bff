-- Nothing to undo: as 20261207000005's, the words added only let more queries find evidence by
-- its name.
SELECT 1;
