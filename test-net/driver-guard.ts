/**
 * Drivers (test files run under `nsenter --net=/run/netns/<sandbox>`) call this first: the test process tells its own
 * namespace's identity ("dev:ino") in DRIVER_FORBIDDEN_NETNS, and a driver that finds itself there exits (the
 * libraries it drives would change the machine's own firewall).
 */
import { statSync } from 'node:fs';

export const forbiddenNetnsVar = 'FIREWALL_DRIVER_FORBIDDEN_NETNS';

export function ownNetnsId(): string {
  const st = statSync('/proc/self/ns/net');
  return `${st.dev}:${st.ino}`;
}

export function refuseRootNetns(driver: string): void {
  const forbidden = process.env[forbiddenNetnsVar];
  if (!forbidden || forbidden === ownNetnsId()) {
    process.stderr.write(`${driver}: refusing to run in the root network namespace\n`);
    process.exit(3);
  }
}
