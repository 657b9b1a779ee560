// A racy check-then-insert "create user" service in Node, served over HTTP/2
// (h2c, prior knowledge) and HTTP/1.1 on two ports of one process sharing one
// store, so that bench/probe/packet.py can aim --sync packet straight at an
// HTTP/2 server (no proxy between) and compare it, on the same service, with
// --sync lastbyte and Promise.all over HTTP/1.1.
//
// POST /v1/users {"email": E}: look E up, wait DELAY_US (a database round
// trip, with nothing held across it), insert if it was absent: 201 with the
// new row, else 200. Each request's arrival is stamped (process.hrtime, ns)
// when its body is complete, i.e. when the application could first act on
// it: GET /arrivals {"arrivals": [...]}, POST /reset, GET /v1/users?email=E.
//
// usage: node racy_h2.js DELAY_US MAX_SECONDS
// Listens on 127.0.0.1 only; prints "h1 PORT h2 PORT" on stdout.
const http = require('http');
const http2 = require('http2');

const delayUs = Number(process.argv[2] || 1000);
const maxSeconds = Number(process.argv[3] || 600);
let users = [];
let arrivals = [];
let nextId = 1;

const sleep = (us) => new Promise((r) => setTimeout(r, Math.max(1, Math.round(us / 1000))));

function send(res, status, obj) {
  const body = obj === undefined ? '' : JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

// Same handler for both protocols: the compatibility API gives both the
// (req, res) shape.
function handle(req, res) {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const url = new URL(req.url, 'http://x');
    if (req.method === 'POST' && url.pathname === '/v1/users') {
      arrivals.push(Number(process.hrtime.bigint()));
      let email;
      try {
        email = JSON.parse(Buffer.concat(chunks).toString()).email;
      } catch (e) {
        return send(res, 400, { error: 'bad json' });
      }
      const found = users.find((u) => u.email === email);
      await sleep(delayUs);
      if (found) return send(res, 200, { user: found });
      const u = { id: 'u' + nextId++, email };
      users.push(u);
      return send(res, 201, { user: u });
    }
    if (req.method === 'GET' && url.pathname === '/v1/users') {
      const email = url.searchParams.get('email');
      return send(res, 200, { data: users.filter((u) => u.email === email) });
    }
    if (req.method === 'GET' && url.pathname === '/arrivals') return send(res, 200, { arrivals });
    if (req.method === 'POST' && url.pathname === '/reset') {
      users = [];
      arrivals = [];
      return send(res, 204);
    }
    return send(res, 404, { error: 'not found' });
  });
}

const h1 = http.createServer(handle);
// The probe sends up to 100 streams per connection; Node's default is 100.
const h2 = http2.createServer({ settings: { maxConcurrentStreams: 100 } }, handle);
h1.listen(0, '127.0.0.1', () => {
  h2.listen(0, '127.0.0.1', () => {
    console.log('h1 %d h2 %d', h1.address().port, h2.address().port);
  });
});
setTimeout(() => process.exit(0), maxSeconds * 1000).unref();
process.on('SIGTERM', () => process.exit(0));
