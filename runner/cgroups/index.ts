export * from './detect.js';
export * from './limits.js';
export * from './manager.js';
export * from './ops.js';
export * from './v1.js';
export * from './v2.js';
