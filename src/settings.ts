/**
 * How fragcache reads its own groups of settings (`breaker`, `lock`, `options.nearCache`): every name
 * one the group knows, every value a positive number. A JSON config is type-checked by nothing, so a
 * misspelt or wrong setting must fail when its cache is created rather than quietly become the default.
 */

/** Reads one setting of a group: its value, or `fallback` when the group does not give it. */
export type SettingReader<Name extends string> = (name: Name, fallback: number, options?: { readonly unbounded?: boolean }) => number;

/**
 * A reader of the settings `given` (an object of them, or `true` or nothing for all defaults), after
 * refusing any name not in `names`. `path` names the group in errors as a config writes it: `breaker`,
 * `lock`, `options.nearCache`. A value must be a positive number; `unbounded` also allows `Infinity`,
 * for a setting where it means something (a circuit that never opens).
 */
export function settingsOf<Name extends string>(path: string, given: object | true | undefined, names: readonly Name[]): SettingReader<Name> {
  const values = given === true || given === undefined ? {} : given;
  for (const name of Object.keys(values)) {
    if (!names.some((known) => known === name)) throw new TypeError(`Unknown setting '${name}' in ${path}: it takes ${names.join(', ')}`);
  }
  return (name, fallback, { unbounded = false } = {}) => {
    const value: unknown = Reflect.get(values, name);
    if (value === undefined) return fallback;
    if (typeof value === 'number' && value > 0 && (Number.isFinite(value) || unbounded)) return value;
    const shown = typeof value === 'string' ? `'${value}'` : String(value);
    throw new TypeError(`${path}.${name} must be a positive number${unbounded ? ' or Infinity' : ''}, not ${shown}`);
  };
}
