/**
 * How fragcache reads its own groups of settings (`breaker`, `lock`, `options.nearCache`): every name
 * one the group knows, every value a positive number it can use. A JSON config is type-checked by
 * nothing, so a misspelt or wrong setting must fail when its cache is created rather than quietly
 * become the default.
 */

/** The longest delay setTimeout takes (2³¹ − 1 ms, about 24.8 days); a longer one fires at once. */
export const LONGEST_TIMER = 2 ** 31 - 1;

/**
 * What a setting is: a duration in milliseconds (at most LONGEST_TIMER, since timers measure it), a
 * count or size, or a threshold that `Infinity` turns off.
 */
export type SettingKind = 'milliseconds' | 'count' | 'threshold';

/** The first name `given` sets that is not one of `known`: what a config misspelt, if anything. */
export function unknownName(given: object, known: readonly string[]): string | undefined {
  return Object.keys(given).find((name) => !known.includes(name));
}

/** Reads one setting of a group: its value, or `fallback` when the group does not give it. */
export type SettingReader<Name extends string> = (name: Name, kind: SettingKind, fallback: number) => number;

/**
 * A reader of the settings `given` (an object of them, or nothing for all defaults), after refusing
 * anything else and any name not in `names`. `path` names the group in errors as a config writes it:
 * `breaker`, `lock`, `options.nearCache`; `otherwise` what the group may be besides an object (a caller
 * that takes `true` for all defaults passes undefined for it).
 */
export function settingsOf<Name extends string>(path: string, given: unknown, names: readonly Name[], otherwise = ''): SettingReader<Name> {
  const values = given === undefined ? {} : given;
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new TypeError(`${path} must be ${otherwise}an object of settings, not ${shown(given)}`);
  }
  const unknown = unknownName(values, names);
  if (unknown !== undefined) throw new TypeError(`Unknown setting '${unknown}' in ${path}: it takes ${names.join(', ')}`);
  return (name, kind, fallback) => {
    const value: unknown = Reflect.get(values, name);
    if (value === undefined) return fallback;
    if (typeof value === 'number' && value > 0 && fits(value, kind)) return value;
    throw new TypeError(`${path}.${name} must be ${KIND_TEXT[kind]}, not ${shown(value)}`);
  };
}

function fits(value: number, kind: SettingKind): boolean {
  switch (kind) {
    case 'milliseconds':
      return value <= LONGEST_TIMER;
    case 'count':
      return Number.isFinite(value);
    case 'threshold':
      return !Number.isNaN(value);
  }
}

const KIND_TEXT: Readonly<Record<SettingKind, string>> = {
  milliseconds: `a positive number of milliseconds, at most ${LONGEST_TIMER}`,
  count: 'a positive number',
  threshold: 'a positive number or Infinity',
};

function shown(value: unknown): string {
  if (typeof value === 'string') return `'${value}'`;
  return Array.isArray(value) ? JSON.stringify(value) : String(value);
}
