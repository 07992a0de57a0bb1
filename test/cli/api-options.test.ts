/** --max-event-streams and --api-host: defaults, the environment, and what validation refuses. */
import { describe, expect, it } from 'vitest';
import { resolveConfig } from '../../src/config.js';
import { ConfigError } from '../../src/errors.js';

describe('API options', () => {
  it('default to 16 event streams and no extra host names; flags and SYNFIN_* set them', () => {
    const d = resolveConfig({}, {});
    expect(d.maxEventStreams).toBe(16);
    expect(d.apiHosts).toEqual([]);
    const c = resolveConfig({ 'max-event-streams': '4', 'api-host': ['synfin.internal', 'synfin.monitoring.svc'] }, {});
    expect(c.maxEventStreams).toBe(4);
    expect(c.apiHosts).toEqual(['synfin.internal', 'synfin.monitoring.svc']);
    const e = resolveConfig({}, { SYNFIN_MAX_EVENT_STREAMS: '0', SYNFIN_API_HOST: 'a.example,b.example' });
    expect(e.maxEventStreams).toBe(0);
    expect(e.apiHosts).toEqual(['a.example', 'b.example']);
  });

  it('refuses a negative, fractional or huge stream cap and a host that is not a name', () => {
    for (const v of ['-1', '1.5', '10001', 'many']) {
      expect(() => resolveConfig({ 'max-event-streams': v }, {}), v).toThrow(ConfigError);
    }
    for (const h of ['synfin.internal:9477', 'http://synfin', '10.0.0.1', '::1', '-bad.example', 'a b', '']) {
      expect(() => resolveConfig({ 'api-host': [h, 'ok.example'] }, {}), h).toThrow(/--api-host|expected/);
    }
  });
});
