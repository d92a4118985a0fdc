/** Name validity rules (spec; pkg/utils). These names end up in file names and firewall comments. */
import { CtnetError, ErrorCode } from '../errors.js';

const idPattern = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

function show(value: string): string {
  return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}…` : value);
}

export function validateContainerId(id: string): void {
  if (!id) throw new CtnetError(ErrorCode.invalidEnv, 'CNI_CONTAINERID is empty');
  if (!idPattern.test(id)) {
    throw new CtnetError(ErrorCode.invalidEnv, `invalid CNI_CONTAINERID ${show(id)}: must match ${idPattern.source}`);
  }
}

export function validateNetworkName(name: unknown): void {
  if (typeof name !== 'string' || !name) {
    throw new CtnetError(ErrorCode.invalidConfig, 'invalid network config: "name" is missing');
  }
  if (!idPattern.test(name)) {
    throw new CtnetError(ErrorCode.invalidConfig, `invalid network name ${show(name)}: must match ${idPattern.source}`);
  }
}

export function validateIfname(name: string, variable = 'CNI_IFNAME'): void {
  const bytes = Buffer.byteLength(name);
  let problem: string | undefined;
  if (bytes === 0) problem = 'is empty';
  else if (bytes > 15) problem = `is ${bytes} bytes long, the limit is 15`;
  else if (name === '.' || name === '..') problem = 'may not be "." or ".."';
  else if (/[/:\s]/.test(name)) problem = 'may not contain "/", ":" or whitespace';
  if (problem) throw new CtnetError(ErrorCode.invalidEnv, `invalid ${variable} ${show(name)}: ${problem}`);
}
