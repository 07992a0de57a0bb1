import { describe, expect, it } from 'vitest';
import { identity } from '../helpers/identity.js';
import { attachTransitionLogging, createLogger } from '../../src/observability/log.js';
import { EventHub } from '../../src/stack/events.js';
import { State } from '../../src/tcp/state.js';

function memoryLogger(level: 'info' | 'debug') {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger(level, { write: (s: string) => void lines.push(JSON.parse(s)) });
  return { logger, lines };
}

const where = () => ({ client: '198.18.0.1:40000', destination: '198.18.1.2:80' });

describe('logs', () => {
  it('debug: every transition is logged with the connection id, addresses, from and to', () => {
    const { logger, lines } = memoryLogger('debug');
    const hub = new EventHub();
    attachTransitionLogging(hub, logger, where);
    hub.stateChange(identity(9, 0), State.LISTEN, State.SYN_RECEIVED, 1000, 1000);
    hub.stateChange(identity(9, 0), State.SYN_RECEIVED, State.ESTABLISHED, 1500, 1000);
    hub.closed(identity(9, 0), 'fin', 2000);
    const transitions = lines.filter((l) => l.msg === 'transition');
    expect(transitions).toHaveLength(2);
    expect(transitions[1]).toMatchObject({
      level: 20,
      name: 'synfin',
      conn: 9,
      client: '198.18.0.1:40000',
      destination: '198.18.1.2:80',
      from: 'SYN_RECEIVED',
      to: 'ESTABLISHED',
      secondsInFrom: 0.5,
    });
    expect(lines.at(-1)).toMatchObject({ msg: 'closed', conn: 9, reason: 'fin' });
  });

  it('info: transitions cost nothing (no subscription) and are not logged', () => {
    const { logger, lines } = memoryLogger('info');
    const hub = new EventHub();
    attachTransitionLogging(hub, logger, where);
    expect(hub.hasStateSubscribers).toBe(false);
    hub.stateChange(identity(1, 0), State.LISTEN, State.SYN_RECEIVED, 0, 0);
    expect(lines).toEqual([]);
  });

  it('detaching stops the logging', () => {
    const { logger, lines } = memoryLogger('debug');
    const hub = new EventHub();
    const detach = attachTransitionLogging(hub, logger, where);
    detach();
    hub.stateChange(identity(1, 0), State.LISTEN, State.SYN_RECEIVED, 0, 0);
    expect(lines).toEqual([]);
  });
});
