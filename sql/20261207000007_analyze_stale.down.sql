DROP FUNCTION analyze_stale_tables();
