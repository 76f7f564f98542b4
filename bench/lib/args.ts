/**
 * The command line every benchmark takes: whole-number options (`--reps N`, ...), on/off flags
 * (`--vm`) and `--only a,b` naming a subset of its cases. One parser, so every benchmark refuses
 * a bad option the same way.
 */
export interface BenchArgSpec {
  /** Whole-number options (at least 1) by name without "--", with their defaults. */
  counts: Record<string, number>;
  /** Flags by name without "--". */
  flags?: readonly string[];
  /** The benchmark's cases, for `--only`. */
  cases: readonly string[];
}

export interface BenchArgs {
  counts: Record<string, number>;
  flags: Set<string>;
  only: Set<string>;
}

export function parseBenchArgs(args: readonly string[], spec: BenchArgSpec): BenchArgs {
  const counts = { ...spec.counts };
  const flags = new Set<string>();
  let only = new Set(spec.cases);
  const usage = [
    ...Object.keys(spec.counts).filter((n) => n === 'reps').map((n) => `--${n} N`),
    `--only ${spec.cases.join(',')}`,
    ...(spec.flags ?? []).map((f) => `--${f}`),
    ...Object.keys(spec.counts).filter((n) => n !== 'reps').map((n) => `--${n} N`),
  ].join(', ');
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const name = a.startsWith('--') ? a.slice(2) : '';
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new Error(`Option ${a} needs a value`);
      return v;
    };
    if (Object.hasOwn(counts, name)) {
      const v = value();
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new Error(`Invalid ${a} "${v}": use an integer >= 1`);
      counts[name] = n;
    } else if (spec.flags?.includes(name)) {
      flags.add(name);
    } else if (name === 'only') {
      const v = value();
      const names = v.split(',');
      const bad = names.filter((n) => !spec.cases.includes(n));
      if (bad.length) throw new Error(`Invalid --only "${v}": use a comma-separated list of ${spec.cases.join(', ')}`);
      only = new Set(names);
    } else {
      throw new Error(`Unknown option "${a}": use ${usage}`);
    }
  }
  return { counts, flags, only };
}
