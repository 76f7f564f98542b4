/** Parses `--labels app=web,tier=front` into a label map (keys and values checked as Kubernetes labels). */
import { ConfigError, ValidationError } from '../errors.js';
import { checkLabelKey, checkLabelValue } from '../identity/labels.js';
import { quote } from '../net/ip.js';

export function parseLabelsArg(text: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (text === undefined || text === '') return out;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) throw new ConfigError(`Invalid label ${quote(part)} in --labels: write KEY=VALUE pairs separated by commas, e.g. app=web,tier=front`);
    const key = part.slice(0, eq);
    const value = part.slice(eq + 1);
    try {
      checkLabelKey('labels', key);
      checkLabelValue('labels', key, value);
    } catch (err) {
      if (err instanceof ValidationError) throw new ConfigError(`Invalid --labels: ${err.message}`);
      throw err;
    }
    if (key in out) throw new ConfigError(`Label ${quote(key)} is given twice in --labels: give each key once`);
    out[key] = value;
  }
  return out;
}
