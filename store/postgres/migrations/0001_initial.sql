-- Keybrake's PostgreSQL store, schema version 1. See doc.go.

-- One row: the fleet-wide numbers that must be contiguous or remembered.
CREATE TABLE keybrake_meta (
    one          boolean PRIMARY KEY DEFAULT true CHECK (one),
    last_session bigint  NOT NULL DEFAULT 0, -- sessions are numbered 1, 2, 3 ... with no gap
    checkpoint   bigint  NOT NULL DEFAULT 0, -- the highest entry number a Prune removed
    checkpoint_hash bytea NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);
INSERT INTO keybrake_meta DEFAULT VALUES;

-- One row per Store that ever opened the database read-write: its
-- heartbeat and the head of its own audit chain.
CREATE TABLE keybrake_sessions (
    id         bigint      PRIMARY KEY,
    host       text        NOT NULL,
    pid        integer     NOT NULL,
    started    timestamptz NOT NULL DEFAULT now(),
    heartbeat  timestamptz NOT NULL DEFAULT now(),
    ttl        interval    NOT NULL, -- expired when heartbeat + ttl < now()
    closed     timestamptz,          -- closed cleanly, or expired and recovered
    closed_by  bigint,               -- the session that recovered it; its own id on Close
    head_seq   bigint      NOT NULL DEFAULT 0, -- entries this session appended
    head_hash  bytea       NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000',
    cut_seq    bigint      NOT NULL DEFAULT 0, -- the last of its entries a Prune removed
    cut_hash   bytea       NOT NULL DEFAULT '\x0000000000000000000000000000000000000000000000000000000000000000'
);
CREATE INDEX keybrake_sessions_open ON keybrake_sessions (heartbeat) WHERE closed IS NULL;

CREATE SEQUENCE keybrake_record_ids;
CREATE SEQUENCE keybrake_entry_numbers;

-- Records: the columns queries filter on, and the record itself as JSONB
-- of audit.Record's JSON form. time_ns is unix nanoseconds, clamped to
-- int64: timestamptz keeps only microseconds, and records are ordered by
-- their exact Time.
CREATE TABLE keybrake_records (
    id       bigint  PRIMARY KEY,
    time_ns  bigint  NOT NULL,
    agent    text    NOT NULL,
    vendor   text    NOT NULL,
    decision text    NOT NULL,
    customer text    NOT NULL,
    outcome  text    NOT NULL,
    session  bigint  NOT NULL, -- the session that wrote it Reserved (or appended it)
    replay   boolean NOT NULL DEFAULT false, -- a Replayed reservation: holds nothing
    body     jsonb   NOT NULL
);
CREATE INDEX keybrake_records_time ON keybrake_records (time_ns, id);
CREATE INDEX keybrake_records_agent_time ON keybrake_records (agent, time_ns, id);
CREATE INDEX keybrake_records_outstanding ON keybrake_records (id) WHERE outcome IN ('reserved', 'unknown');
CREATE INDEX keybrake_records_reserved ON keybrake_records (session) WHERE outcome = 'reserved';

-- The audit journal: one chain per session. hash = SHA-256(prev hash |
-- session | seq | n | body); body is the exact JSON text hashed.
CREATE TABLE keybrake_journal (
    session   bigint NOT NULL,
    seq       bigint NOT NULL,
    n         bigint NOT NULL, -- fleet-wide entry number, increasing along each chain
    record_id bigint NOT NULL,
    hash      bytea  NOT NULL,
    body      text   NOT NULL,
    PRIMARY KEY (session, seq)
);
CREATE UNIQUE INDEX keybrake_journal_n ON keybrake_journal (n);
CREATE INDEX keybrake_journal_record ON keybrake_journal (record_id, n);

CREATE TABLE keybrake_counters (
    key     text   PRIMARY KEY,
    settled bigint NOT NULL DEFAULT 0 CHECK (settled >= 0),
    pending bigint NOT NULL DEFAULT 0 CHECK (pending >= 0),
    unknown bigint NOT NULL DEFAULT 0 CHECK (unknown >= 0)
);

CREATE TABLE keybrake_idempotency (
    key         text   PRIMARY KEY,
    record_id   bigint NOT NULL, -- 0 only inside the transaction that claims a new key
    fingerprint text   NOT NULL
);
CREATE INDEX keybrake_idempotency_record ON keybrake_idempotency (record_id);

CREATE TABLE keybrake_facts (
    key   text PRIMARY KEY,
    value text NOT NULL
);
