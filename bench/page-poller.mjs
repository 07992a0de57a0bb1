// What N open live pages cost synfin: each "page" fetches /api/summary and the connection table
// of one state once per interval, as src/http/page/app.js does, for `seconds`, then prints
// {"polls":..,"errors":..,"p50Ms":..,"maxMs":..}. Runs inside synfin's namespace (its API is on
// 127.0.0.1 there): node bench/page-poller.mjs URL PAGES INTERVAL_MS SECONDS
const [url, pagesText = '4', intervalText = '1000', secondsText = '10'] = process.argv.slice(2);
if (url === undefined) {
  console.error('usage: node bench/page-poller.mjs URL [PAGES] [INTERVAL_MS] [SECONDS]');
  process.exit(2);
}
const pages = Number(pagesText);
const interval = Number(intervalText);
const end = Date.now() + Number(secondsText) * 1000;
const times = [];
let errors = 0;
async function page(i) {
  // Spread the pages over the interval, as independent browsers would be.
  await new Promise((r) => setTimeout(r, (interval * i) / pages));
  while (Date.now() < end) {
    const t0 = performance.now();
    try {
      for (const p of ['/api/summary', '/api/connections?state=ESTABLISHED']) {
        const res = await fetch(url + p, { cache: 'no-store' });
        await res.arrayBuffer();
        if (res.status !== 200) errors++;
      }
    } catch {
      errors++;
    }
    times.push(performance.now() - t0);
    await new Promise((r) => setTimeout(r, interval));
  }
}
await Promise.all(Array.from({ length: pages }, (_, i) => page(i)));
times.sort((a, b) => a - b);
const p50 = times.length > 0 ? times[Math.floor(times.length / 2)] : NaN;
console.log(JSON.stringify({ polls: times.length, errors, p50Ms: Number(p50.toFixed(2)), maxMs: Number((times.at(-1) ?? NaN).toFixed(2)) }));
