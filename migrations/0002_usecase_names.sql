-- Usecase names are unique across the installation. The reservation is written
-- by a trigger in the same transaction as the UsecaseRegistered event, so two
-- concurrent registrations of one name cannot both commit; UsecaseDeleted frees it.
CREATE TABLE usecase_names
(
    name       text PRIMARY KEY,
    usecase_id text NOT NULL UNIQUE
);

CREATE FUNCTION usecase_names_track() RETURNS trigger
    LANGUAGE plpgsql AS
$$
BEGIN
    IF NEW.aggregate_type = 'Usecase' AND NEW.event_type = 'UsecaseRegistered' THEN
        INSERT INTO usecase_names (name, usecase_id)
        VALUES (NEW.payload -> 'UsecaseRegistered' ->> 'name', NEW.aggregate_id);
    ELSIF NEW.aggregate_type = 'Usecase' AND NEW.event_type = 'UsecaseDeleted' THEN
        DELETE FROM usecase_names WHERE usecase_id = NEW.aggregate_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER usecase_names_track
    AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION usecase_names_track();
