/**
 * Is a host port free for another program? A test bind in the runner's network namespace (the
 * same question Docker answers by binding the port itself). SCTP is not probed.
 */
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import type { PortMapping } from './ports.js';

export function probePort(m: PortMapping): Promise<boolean> {
  const host = m.hostIP === '' ? '0.0.0.0' : m.hostIP;
  return new Promise((resolve) => {
    if (m.protocol === 'tcp') {
      const server = createServer();
      server.once('error', (e: NodeJS.ErrnoException) => resolve(e.code !== 'EADDRINUSE'));
      server.listen({ host, port: m.hostPort, exclusive: true }, () => server.close(() => resolve(true)));
    } else if (m.protocol === 'udp') {
      const socket = createSocket(host.includes(':') ? 'udp6' : 'udp4');
      socket.once('error', (e: NodeJS.ErrnoException) => {
        socket.close();
        resolve(e.code !== 'EADDRINUSE');
      });
      socket.bind({ address: host, port: m.hostPort, exclusive: true }, () => socket.close(() => resolve(true)));
    } else {
      resolve(true);
    }
  });
}
