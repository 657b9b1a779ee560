-- pgbench reference for POST /v1/users: the statement racefree runs
-- (src/store/users.c), one autocommitted statement per transaction, a new
-- random id and email each time. Variables from bench/run: -D ws=… -D now=…
\set uid random(1, 999999999999999999)
\set email random(1, 999999999999999999)
INSERT INTO users (id, workspace_id, email, name, created_at, updated_at) VALUES (:uid, :ws, :email, NULL, :now, :now) ON CONFLICT (workspace_id, email) DO NOTHING RETURNING id, email, name, username, created_at, updated_at;
