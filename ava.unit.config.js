export default {
  files: [
    'agent/**/*.test.ts',
    'core/**/*.test.ts',
    'netns/**/*.test.ts',
    'ipam/**/*.test.ts',
    'iptables/**/*.test.ts',
    'plugins/**/*.test.ts',
    'runner/**/*.test.ts',
    'network/**/*.test.ts',
    'debug/**/*.test.ts',
    'node/**/*.test.ts',
    'cli/**/*.test.ts',
  ],
  extensions: { ts: 'module' },
  nodeArguments: ['--import=tsx'],
  workerThreads: false,
  timeout: '60s',
};
