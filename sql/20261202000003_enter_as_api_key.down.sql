DROP FUNCTION enter_as_api_key(uuid);
