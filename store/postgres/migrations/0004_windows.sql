-- Rolling windows (store.Store's "Windows"): one row per windowed hold
-- still counted, keyed by the window's key, then the record's time and
-- ID. A reservation locks its window's row in keybrake_window_keys (in
-- key order, before any counter) and sums the window's rows; Prune
-- deletes the rows that have left their windows.
CREATE TABLE keybrake_window_keys (
	key text PRIMARY KEY
);
CREATE TABLE keybrake_windows (
	key       text   NOT NULL,
	time_ns   bigint NOT NULL,
	record_id bigint NOT NULL,
	window_ns bigint NOT NULL CHECK (window_ns > 0),
	settled   bigint NOT NULL DEFAULT 0 CHECK (settled >= 0),
	pending   bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
	unknown   bigint NOT NULL DEFAULT 0 CHECK (unknown >= 0),
	PRIMARY KEY (key, time_ns, record_id)
);
CREATE INDEX keybrake_windows_record ON keybrake_windows (record_id);
CREATE INDEX keybrake_windows_leaves ON keybrake_windows ((time_ns + window_ns));
