/**
 * Config validation with ajv. The bundled binaries carry validators precompiled at build time
 * (scripts/build.mjs registers them on globalThis) so a plugin call does not pay ajv's compile
 * cost; from source (tests, tsx) the schema is compiled here on first use.
 */
import { createRequire } from 'node:module';
import { CtnetError, ErrorCode } from '../errors.js';

export interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: Record<string, unknown>;
}
export type Validator = ((data: unknown) => boolean) & { errors?: SchemaError[] | null };

declare global {
  var __ctnetValidators: Record<string, Validator> | undefined;
}

const compiled = new Map<string, Validator>();

export function getValidator(id: string, schema: object): Validator {
  const pre = globalThis.__ctnetValidators?.[id];
  if (pre) return pre;
  let v = compiled.get(id);
  if (!v) {
    const require = createRequire(import.meta.url);
    const AjvModule = require('ajv') as { default: new (o: object) => { compile(s: object): Validator } };
    const ajv = new AjvModule.default({ allErrors: false, strict: false });
    v = ajv.compile(schema);
    compiled.set(id, v);
  }
  return v;
}

/** "/ipam/ranges/0" → "ipam.ranges[0]" */
function keyPath(instancePath: string, extra?: unknown): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (typeof extra === 'string') parts.push(extra);
  let out = '';
  for (const p of parts) out += /^\d+$/.test(p) ? `[${p}]` : out ? `.${p}` : p;
  return out || '(top level)';
}

export function describeSchemaError(e: SchemaError): string {
  if (e.keyword === 'required') return `"${keyPath(e.instancePath, e.params.missingProperty)}" is required`;
  if (e.keyword === 'additionalProperties') return `"${keyPath(e.instancePath, e.params.additionalProperty)}" is not allowed`;
  if (e.keyword === 'enum') {
    return `"${keyPath(e.instancePath)}" must be one of ${JSON.stringify(e.params.allowedValues)}`;
  }
  return `"${keyPath(e.instancePath)}" ${e.message ?? 'is invalid'}`;
}

/** Validates `data`, throwing code 7 with a message that names the offending key. */
export function validateConfig(id: string, schema: object, data: unknown): void {
  const validate = getValidator(id, schema);
  if (validate(data)) return;
  const first = validate.errors?.[0];
  const message = first ? describeSchemaError(first) : 'does not match the schema';
  throw new CtnetError(ErrorCode.invalidConfig, `invalid network config: ${message}`);
}
