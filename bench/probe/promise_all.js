// The naive reproduction of seed 002 (reproduce.js): N fetches started at
// once with Promise.all, all creating the same user. Used by spread.py as the
// baseline the probe is compared against.
//
// usage: node promise_all.js URL N EMAIL
// Prints one JSON line: {"statuses": {...}, "errors": k}.
const [url, nArg, email] = process.argv.slice(2);
const n = Number(nArg);

async function main() {
  const results = await Promise.all(
    Array.from({ length: n }, () =>
      fetch(url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ email }),
      }).then(
        async (r) => {
          await r.arrayBuffer();
          return r.status;
        },
        () => 'error',
      ),
    ),
  );
  const statuses = {};
  let errors = 0;
  for (const s of results) {
    if (s === 'error') errors++;
    else statuses[s] = (statuses[s] || 0) + 1;
  }
  console.log(JSON.stringify({ statuses, errors }));
}

main();
