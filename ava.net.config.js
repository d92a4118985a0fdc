// Root-only integration tests in sandbox namespaces; `npm run test:net` sweeps leftovers first.
export default {
  files: ['test-net/**/*.test.ts'],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  timeout: '3m',
  concurrency: 2,
};
