export * from './cni/index.js';
export * from './errors.js';
export * from './exec.js';
export * from './ip.js';
export * from './log.js';
export * from './native.js';
export * from './random.js';
export * from './resident.js';
