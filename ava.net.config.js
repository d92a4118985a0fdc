// Root-only integration tests in sandbox namespaces; `npm run test:net` sweeps leftovers first.
export default {
  files: ['test-net/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  timeout: '3m',
  concurrency: 2,
  // A plugin call that names no stateDir keeps its runtime state here rather than in the machine's /run/ctnet
  // (keyed by the network namespace it runs in, so tests never share it); the sweep removes it with the rest.
  environmentVariables: { CTNET_RUN_DIR: '/tmp/ctt-run' },
};
