// Preloaded into the agent by bench/agent-soak.ts (node --require): on SIGUSR2 it collects garbage (with
// --expose-gc) and writes the process's memory figures as one JSON line to $CTNET_SOAK_PROBE. Benchmark use only.
const { writeFileSync } = require('node:fs');

const out = process.env.CTNET_SOAK_PROBE;
if (out) {
  process.on('SIGUSR2', () => {
    if (typeof global.gc === 'function') global.gc();
    const m = process.memoryUsage();
    writeFileSync(out, `${JSON.stringify({ rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external })}\n`);
  });
}
