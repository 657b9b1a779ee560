// B4 peer (issue 7): racefree's POST /v1/users contract (docs/API.md,
// "Users (create-if-missing)") written the way a Node tutorial would, on the
// same PostgreSQL table: INSERT … ON CONFLICT DO NOTHING RETURNING, and when
// that returns nothing, SELECT the row that won. Each statement autocommits
// through a pg.Pool: READ COMMITTED makes the conflicting INSERT wait for the
// winner's commit, so the SELECT that follows sees it.
//
//   node server.js   with PORT, DATABASE_URL, WORKSPACE_ID, ROOT_KEY, POOL_MAX
//
// Auth is a fixed bearer check against ROOT_KEY (racefree looks the key's
// hash up and caches it, so neither side touches the database for it).
'use strict';

const crypto = require('node:crypto');
const fastify = require('fastify');
const { Pool } = require('pg');

const env = (name) => {
  const v = process.env[name];
  if (!v) {
    console.error(`peer: ${name} is required`);
    process.exit(2);
  }
  return v;
};

const port = Number(env('PORT'));
const workspace = env('WORKSPACE_ID');
const rootKey = env('ROOT_KEY');
const pool = new Pool({
  connectionString: env('DATABASE_URL'),
  max: Number(process.env.POOL_MAX || 9),
});

const COLS = 'id, email, name, username, created_at, updated_at';
const INSERT =
  'INSERT INTO users (id, workspace_id, email, name, created_at, updated_at)' +
  ' VALUES ($1, $2, $3, $4, $5, $5)' +
  ` ON CONFLICT (workspace_id, email) DO NOTHING RETURNING ${COLS}`;
const SELECT = `SELECT ${COLS} FROM users WHERE workspace_id = $1 AND email = $2`;

const userJson = (r) => ({
  id: r.id,
  email: r.email,
  name: r.name,
  username: r.username,
  createdAt: r.created_at,
  updatedAt: r.updated_at,
});

const problem = (reply, status, code, detail) =>
  reply
    .code(status)
    .type('application/problem+json')
    .send({ type: `urn:racefree:error:${code}`, title: code, status, detail, code });

// The same rule as racefree's rf_email_normalize: trimmed, ASCII lower-case,
// one '@' with text on both sides, no spaces or control characters.
function normalizeEmail(s) {
  const e = s.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (e.length === 0 || Buffer.byteLength(e) > 254 || /[\x00-\x20\x7f]/.test(e)) return null;
  const at = e.indexOf('@');
  if (at <= 0 || at !== e.lastIndexOf('@') || at === e.length - 1) return null;
  return e;
}

const app = fastify({ logger: false, bodyLimit: 1 << 20 });

app.post('/v1/users', async (req, reply) => {
  if (req.headers.authorization !== `Bearer ${rootKey}`) {
    reply.header('WWW-Authenticate', 'Bearer');
    return problem(reply, 401, 'unauthorized', 'A valid root key is required.');
  }
  const body = req.body;
  if (typeof body !== 'object' || body === null || Array.isArray(body))
    return problem(reply, 400, 'invalid_json', 'The body must be one JSON object.');
  for (const k of Object.keys(body))
    if (k !== 'email' && k !== 'name') return problem(reply, 422, 'unknown_field', k);
  if (body.email === undefined) return problem(reply, 422, 'missing_field', 'email');
  if (typeof body.email !== 'string') return problem(reply, 422, 'invalid_field', 'email');
  if (body.name !== undefined && typeof body.name !== 'string')
    return problem(reply, 422, 'invalid_field', 'name');
  const email = normalizeEmail(body.email);
  if (!email) return problem(reply, 422, 'invalid_email', 'Not an email address.');

  const id = 'usr_' + crypto.randomBytes(16).toString('base64url');
  const now = new Date().toISOString();
  const ins = await pool.query(INSERT, [id, workspace, email, body.name ?? null, now]);
  if (ins.rowCount === 1) return reply.code(201).send({ user: userJson(ins.rows[0]), created: true });
  const sel = await pool.query(SELECT, [workspace, email]);
  if (sel.rowCount !== 1)
    // Deleted between the two statements: a retry would find or create it.
    return problem(reply, 503, 'database_unavailable', 'Conflicting row vanished; retry.');
  return reply.code(200).send({ user: userJson(sel.rows[0]), created: false });
});

app.get('/healthz', async () => ({ status: 'ok' }));

const stop = async () => {
  await app.close();
  await pool.end();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

app.listen({ host: '127.0.0.1', port }).catch((err) => {
  console.error(`peer: ${err.message}`);
  process.exit(1);
});
