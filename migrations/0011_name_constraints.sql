-- The unique constraints on reserved names get names of their own. A violation of
-- one of them, and only of one of them, is a name taken by a concurrent command:
-- the command bus answers it as such (409 name-taken) by this name, and every
-- other unique violation (another writer's events on the same aggregate, say) as
-- what it is.
ALTER TABLE usecase_names RENAME CONSTRAINT usecase_names_pkey TO usecase_name_unique;
ALTER TABLE team_names RENAME CONSTRAINT team_names_pkey TO team_name_unique;
