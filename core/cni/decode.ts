/**
 * Plugin configs are declared once, as decoders built from the helpers below; each plugin's
 * TypeScript config type is derived from its declaration (`Decoded<typeof spec>`).
 *
 * Decoding follows the rules of the JSON decoding the reference plugins are written against,
 * because runtimes depend on them (containerd sends port mappings as `HostPort`, `ContainerPort`):
 * - an object key matches a declared field case-insensitively; when several keys match one field,
 *   the last one wins;
 * - `null` leaves a scalar field unset and clears a list or map;
 * - keys nobody declared are kept as they are (other plugins' and runtimes' keys share the object);
 * - a value of the wrong JSON type is an error that names its key path (code 7).
 * The output carries every declared field under its declared spelling, so code after the decoder
 * reads `conf.runtimeConfig.portMappings[0].hostPort` and nothing else.
 */
import { CtnetError, ErrorCode } from '../errors.js';

export interface Decoder<T> {
  /** What a value must be, for messages: "a string", "an integer in 1-65535". */
  readonly expected: string;
  /**
   * Returns the decoded value; `undefined` for JSON null (a scalar stays unset). With `problems`,
   * a field that does not decode is left out and its error recorded there instead of thrown (DEL
   * decodes what it can of a config that ADD would refuse).
   */
  decode(value: unknown, path: string, problems?: string[]): T | undefined;
  /** Whether null clears a value set earlier in the same object (lists, maps, objects: Go sets them to nil). */
  readonly nullClears: boolean;
  /** The value a null element of a list decodes to ("" for a string, {} for an object). */
  readonly zero: T | undefined;
}

export type Decoded<D> = D extends Decoder<infer T> ? T : never;

type FieldsOf<F extends Record<string, Decoder<unknown>>> = { [K in keyof F]?: Decoded<F[K]> };

function invalid(path: string, what: string): CtnetError {
  return new CtnetError(ErrorCode.invalidConfig, `invalid network config: "${path || '(top level)'}" ${what}`);
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return 'a list';
  if (value === null) return 'null';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)}`;
}

function scalar<T>(expected: string, zero: T, accept: (v: unknown) => v is T): Decoder<T> {
  return {
    expected,
    nullClears: false,
    zero,
    decode(value, path) {
      if (value === null || value === undefined) return undefined;
      if (!accept(value)) throw invalid(path, `must be ${expected}, not ${typeName(value)}`);
      return value;
    },
  };
}

export const str = (): Decoder<string> => scalar('a string', '', (v): v is string => typeof v === 'string');
export const bool = (): Decoder<boolean> => scalar('true or false', false, (v): v is boolean => typeof v === 'boolean');

/** An integer; bounds are the reference's own semantic limits (it refuses values outside them too). */
export function int(min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER): Decoder<number> {
  const bounded = min !== Number.MIN_SAFE_INTEGER || max !== Number.MAX_SAFE_INTEGER;
  const expected = bounded ? `an integer in ${min}-${max}` : 'an integer';
  return scalar(expected, 0, (v): v is number => typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max);
}

export function oneOf<const V extends string>(values: readonly V[]): Decoder<V> {
  return scalar(`one of ${JSON.stringify(values)}`, undefined as unknown as V, (v): v is V =>
    (values as readonly unknown[]).includes(v),
  );
}

/** Any JSON value, kept as it is (prevResult, keys whose shape belongs to someone else). */
export const raw = (): Decoder<unknown> => ({
  expected: 'any value',
  nullClears: true,
  zero: undefined,
  decode: (v) => v ?? undefined,
});

export interface ListDecoder<T> extends Decoder<T[]> {
  readonly item: Decoder<T>;
}

export function list<T>(item: Decoder<T>): ListDecoder<T> {
  return {
    item,
    expected: `a list of ${item.expected.replace(/^an? /, '')}s`,
    nullClears: true,
    zero: undefined,
    decode(value, path, problems) {
      if (value === null || value === undefined) return undefined;
      if (!Array.isArray(value)) throw invalid(path, `must be a list, not ${typeName(value)}`);
      // A null element decodes to the element's zero value; lists of objects get an empty object.
      return value.map((v, i) => (item.decode(v, `${path}[${i}]`, problems) ?? item.zero) as T);
    },
  };
}

/** A map from any key to values of one type (`capabilities`). */
export function mapOf<T>(value: Decoder<T>): Decoder<Record<string, T>> {
  return {
    expected: 'an object',
    nullClears: true,
    zero: undefined,
    decode(v, path, problems) {
      if (v === null || v === undefined) return undefined;
      if (typeof v !== 'object' || Array.isArray(v)) throw invalid(path, `must be an object, not ${typeName(v)}`);
      const out: Record<string, T> = {};
      for (const [k, x] of Object.entries(v)) {
        const d = decodeField(value, x, join(path, k), problems);
        if (d !== undefined) out[k] = d;
      }
      return out;
    },
  };
}

/** One field: thrown errors become entries of `problems` when the caller collects them. */
function decodeField<T>(field: Decoder<T>, value: unknown, path: string, problems: string[] | undefined): T | undefined {
  if (!problems) return field.decode(value, path);
  try {
    return field.decode(value, path, problems);
  } catch (err) {
    problems.push((err as Error).message);
    return undefined;
  }
}

function join(path: string, key: string): string {
  return path ? `${path}.${key}` : key;
}

export interface ObjectDecoder<F extends Record<string, Decoder<unknown>>> extends Decoder<FieldsOf<F>> {
  readonly fields: F;
}

/**
 * An object with declared fields. The result has the declared spelling of every key that matched
 * and every unknown key unchanged; an element of a list that is null decodes to `{}`.
 */
export function object<F extends Record<string, Decoder<unknown>>>(fields: F): ObjectDecoder<F> {
  const byFolded = new Map<string, string>();
  for (const name of Object.keys(fields)) byFolded.set(name.toLowerCase(), name);
  return {
    fields,
    expected: 'an object',
    nullClears: true,
    zero: {},
    decode(value, path, problems) {
      if (value === null || value === undefined) return undefined;
      if (typeof value !== 'object' || Array.isArray(value)) throw invalid(path, `must be an object, not ${typeName(value)}`);
      const out: Record<string, unknown> = {};
      for (const [key, v] of Object.entries(value)) {
        const name = key in fields ? key : byFolded.get(key.toLowerCase());
        if (name === undefined) {
          out[key] = v;
          continue;
        }
        const field = fields[name] as Decoder<unknown>;
        const decoded = decodeField(field, v, join(path, name), problems);
        if (decoded !== undefined) out[name] = decoded;
        else if (field.nullClears) delete out[name];
      }
      return out as FieldsOf<F>;
    },
  };
}

/** Adds fields to an object decoder (a plugin's keys on top of the keys every netconf has). */
export function extend<A extends Record<string, Decoder<unknown>>, B extends Record<string, Decoder<unknown>>>(
  base: ObjectDecoder<A>,
  more: B,
): ObjectDecoder<Omit<A, keyof B> & B> {
  return object({ ...base.fields, ...more } as Omit<A, keyof B> & B);
}
