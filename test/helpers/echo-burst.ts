/**
 * A client for `node -e` inside a namespace: opens N connections at once to HOST:PORT (all from
 * the environment), each writes "hello I", reads the echo back to EOF, and prints
 * {"ok": how many came back intact} once all have closed.
 */
export const ECHO_BURST_SCRIPT = `
const net = require('net');
let ok = 0, done = 0;
const n = +process.env.N;
for (let i = 0; i < n; i++) {
  const s = net.connect({ host: process.env.HOST, port: +process.env.PORT });
  let got = '';
  s.on('connect', () => s.end('hello ' + i));
  s.on('data', (d) => { got += d; });
  s.on('close', () => { if (got === 'hello ' + i) ok++; if (++done === n) console.log(JSON.stringify({ ok })); });
  s.on('error', () => {});
}
`;
