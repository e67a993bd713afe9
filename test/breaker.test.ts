import { expect } from 'chai';
import { CacheRegistry, CircuitBreaker, type CacheIncident, type CacheRecovery } from 'fragcache';
import { warningsDuring } from './hooks.js';
import { sleep } from './helpers.js';

/** A breaker whose reports are recorded. */
function recorded(options?: ConstructorParameters<typeof CircuitBreaker>[0]) {
  const breaker = new CircuitBreaker(options);
  const incidents: CacheIncident[] = [];
  const recoveries: CacheRecovery[] = [];
  breaker.reportTo({ incident: (incident) => incidents.push(incident), recovery: (recovery) => recoveries.push(recovery) }, 'shared');
  return { breaker, incidents, recoveries };
}

describe('the circuit breaker', function () {
  it('reports an outage once when it starts and once when it ends, however many operations fail', function () {
    const { breaker, incidents, recoveries } = recorded({ failureThreshold: 1000 });
    for (let i = 0; i < 50; i++) breaker.failed('read', new Error(`down ${i}`));
    breaker.succeeded();
    breaker.succeeded();
    expect(incidents.map(({ alias, operation, error }) => [alias, operation, (error as Error).message])).to.deep.equal([['shared', 'read', 'down 0']]);
    expect(recoveries).to.have.length(1);
    expect(recoveries[0]).to.include({ alias: 'shared', failures: 50 });
  });

  it('opens after failureThreshold consecutive failures, then lets one probe through every retryAfter ms', async function () {
    const { breaker } = recorded({ failureThreshold: 3, retryAfter: 100 });
    breaker.failed('read', new Error('one'));
    breaker.failed('read', new Error('two'));
    expect(breaker.allows()).to.equal(true);
    breaker.failed('read', new Error('three'));
    expect(breaker.allows()).to.equal(false);
    await sleep(120);
    expect(breaker.allows(), 'the probe').to.equal(true);
    expect(breaker.allows(), 'only one probe').to.equal(false);
    breaker.succeeded();
    expect(breaker.allows()).to.equal(true);
    expect(breaker.isOpen).to.equal(false);
  });

  it('times a guarded operation out, unless its answer arrived while this process was busy', async function () {
    const { breaker, incidents } = recorded({ timeout: 30 });
    expect(await breaker.guard(new Promise(() => undefined), 'read', 'fallback')).to.equal('fallback');
    expect((incidents[0]!.error as Error).name).to.equal('CacheTimeoutError');
    // The answer is ready after 5 ms, but the event loop is held for 100 ms: not a timeout.
    const answer = new Promise<string>((resolve) => setTimeout(() => resolve('answer'), 5));
    const guarded = breaker.guard(answer, 'read', 'fallback');
    const until = Date.now() + 100;
    while (Date.now() < until);
    expect(await guarded).to.equal('answer');
  });

  it('starts the clock with the promise callbacks of the task that asked: a request sent from them is not late for the synchronous work that preceded them', async function () {
    const { breaker, incidents } = recorded({ timeout: 30 });
    // As a backend does: the command goes out from a promise callback, after the synchronous work of the
    // task that asked (another request's handler holding the loop for 100 ms), and is answered in 5 ms.
    const answer = Promise.resolve().then(() => new Promise<string>((resolve) => setTimeout(() => resolve('answer'), 5)));
    const guarded = breaker.guard(answer, 'read', 'fallback');
    const until = Date.now() + 100;
    while (Date.now() < until);
    expect(await guarded).to.equal('answer');
    expect(incidents).to.deep.equal([]);
  });

  it('without a listener, a registry reports outages as process warnings', async function () {
    const caches = new CacheRegistry({ default: { backend: 'locmem' } });
    const breaker = caches.default.breaker;
    const warnings = await warningsDuring(async () => {
      breaker.failed('write', new Error('disk full'));
      breaker.succeeded();
    });
    expect(warnings.map((warning) => warning.name)).to.deep.equal(['CacheIncidentWarning', 'CacheIncidentWarning']);
    expect(warnings[0]!.message).to.equal("fragcache: cache 'default' failed (write), pages render uncached until it recovers: Error: disk full");
    expect(warnings[1]!.message).to.match(/^fragcache: cache 'default' recovered after \d+ ms and 1 failed operations$/);
  });
});
