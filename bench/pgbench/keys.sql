-- pgbench reference for POST /v1/keys {"externalId"}: the transaction
-- racefree runs (src/store/keys.c, key_create_tx): get-or-create the
-- identity (one of 100 external ids), then insert the key pointing at it.
-- Variables from bench/run: -D ws=… -D now=… -D start=…
\set ext random(1, 100)
\set iid random(1, 999999999999999999)
\set kid random(1, 999999999999999999)
\set hash random(1, 999999999999999999)
BEGIN;
INSERT INTO identities (id, workspace_id, external_id, created_at) VALUES (:iid, :ws, :ext, :now) ON CONFLICT (workspace_id, external_id) DO NOTHING RETURNING id;
SELECT id AS idn FROM identities WHERE workspace_id = :ws AND external_id = :ext \gset
INSERT INTO api_keys (id, workspace_id, key_hash, start, name, enabled, remaining, expires, meta, identity_id, created_at, updated_at) VALUES (:kid, :ws, :hash, :start, NULL, 1, NULL, NULL, NULL, :idn, :now, :now);
COMMIT;
