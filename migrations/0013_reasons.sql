-- Why a change was made (`X-Shiplog-Reason`, recorded in its events' metadata), on
-- the platform API's history rows; null for changes recorded without one.
ALTER TABLE revision_view ADD COLUMN reason text;
