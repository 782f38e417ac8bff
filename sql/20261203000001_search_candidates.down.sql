DROP FUNCTION search_candidates(tsquery);
