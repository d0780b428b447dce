-- Counters by prefix (store.Store.Counters: `keybrake status` lists one
-- grant's per-customer counters). The primary key sorts by the
-- database's collation; this index sorts bytewise, so that every key
-- with a prefix lies in one range of it whatever the collation.
CREATE INDEX keybrake_counters_bytewise ON keybrake_counters (key COLLATE "C");
