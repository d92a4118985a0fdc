/** The loopback plugin reads only the keys every netconf has. */
export { netConfFields as loopbackConfig } from '../../core/index.js';
