-- Fleet stops: the halts and revocations every process of the fleet
-- obeys (store.Stops). One row a stop in force; lifting it deletes the
-- row. Each change is audited by a record written in the same
-- transaction, and announced with pg_notify on a channel keyed by the
-- schema (see stops.go).
CREATE TABLE keybrake_stops (
	kind      text   NOT NULL CHECK (kind IN ('halt', 'revoke', 'key')),
	subject   text   NOT NULL,
	source    text   NOT NULL CHECK (source <> ''),
	reason    text   NOT NULL DEFAULT '',
	time_ns   bigint NOT NULL,
	record_id bigint NOT NULL, -- the audit record that set it
	PRIMARY KEY (kind, subject),
	CHECK (kind = 'halt' OR subject <> '')
);
