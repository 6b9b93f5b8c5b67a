-- +goose Up
-- The dead deliveries are few and asked for often (their count at every
-- metrics scrape, the list of them to re-drive), while the sent ones only
-- grow: an index of the dead alone finds them without reading the others.
CREATE INDEX deliveries_dead ON deliveries (id) WHERE status = 'dead';

-- +goose Down
DROP INDEX deliveries_dead;
