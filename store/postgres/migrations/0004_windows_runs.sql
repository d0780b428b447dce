-- Rolling windows (store.Store's "Windows") and the run and principal a
-- record was made for. See doc.go and window.go.

-- One row per record's hold still counted in a rolling window, under its
-- record's Time and ID: what it holds now, as a counter would (pending
-- while Reserved, its settlement once Settled, unknown while Unknown; a
-- Released or Retried hold has no row). Window keys are a namespace of
-- their own: a hold with a Window never touches keybrake_counters.
-- Reservations of one key are serialized by a transaction-level advisory
-- lock of the key, not by a row, so a key needs no row of its own to be
-- created or pruned. until_ns is when the entry leaves its window,
-- saturated rather than overflowing at the int64 range, for Prune's index.
CREATE TABLE keybrake_windows (
    key       text   NOT NULL,
    time_ns   bigint NOT NULL,
    record_id bigint NOT NULL,
    window_ns bigint NOT NULL CHECK (window_ns > 0),
    settled   bigint NOT NULL DEFAULT 0 CHECK (settled >= 0),
    pending   bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
    unknown   bigint NOT NULL DEFAULT 0 CHECK (unknown >= 0),
    until_ns  bigint NOT NULL GENERATED ALWAYS AS (
        CASE WHEN time_ns > 9223372036854775807 - window_ns THEN 9223372036854775807 ELSE time_ns + window_ns END) STORED,
    PRIMARY KEY (key, time_ns, record_id)
);
CREATE INDEX keybrake_windows_until ON keybrake_windows (until_ns);

-- The run and principal are in the body too; as columns, `keybrake audit
-- --run` finds one run's records through an index instead of reading the
-- log. Records written before this migration have neither (the code that
-- wrote them did not know them), so the defaults are what their bodies
-- say. The index leaves out the untagged records, most of a log.
ALTER TABLE keybrake_records
    ADD COLUMN run       text NOT NULL DEFAULT '',
    ADD COLUMN principal text NOT NULL DEFAULT '';
CREATE INDEX keybrake_records_run ON keybrake_records (run, time_ns, id) WHERE run <> '';
