/**
 * Validation of the Kubernetes names that end up in certificates: node names and service
 * accounts are DNS-1123 subdomains, namespaces DNS-1123 labels (the same rules the API server
 * applies), so every one is also a valid SPIFFE path segment.
 */
import { ValidationError } from '../agent/errors.js';

const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function isDns1123Label(s: string): boolean {
  return s.length >= 1 && s.length <= 63 && LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length >= 1 && s.length <= 253 && s.split('.').every((l) => l.length <= 63 && LABEL.test(l));
}

function show(value: unknown): string {
  const s = typeof value === 'string' ? value : String(value);
  return s.length > 80 ? `${s.slice(0, 80)}…` : s;
}

/** A Kubernetes node name (DNS-1123 subdomain, at most 253 characters). */
export function validateNodeName(value: unknown, field = 'node'): string {
  if (typeof value !== 'string' || !isDns1123Subdomain(value)) {
    throw new ValidationError(
      field,
      `Invalid node name "${show(value)}": use a Kubernetes node name (lowercase letters, digits, "-" and ".", at most 253 characters)`,
    );
  }
  return value;
}

/** A Kubernetes namespace (DNS-1123 label, at most 63 characters). */
export function validateNamespace(value: unknown, field = 'namespace'): string {
  if (typeof value !== 'string' || !isDns1123Label(value)) {
    throw new ValidationError(
      field,
      `Invalid namespace "${show(value)}": use a Kubernetes namespace (lowercase letters, digits and "-", at most 63 characters)`,
    );
  }
  return value;
}

/** A Kubernetes service account name (DNS-1123 subdomain). */
export function validateServiceAccount(value: unknown, field = 'serviceAccount'): string {
  if (typeof value !== 'string' || !isDns1123Subdomain(value)) {
    throw new ValidationError(
      field,
      `Invalid service account "${show(value)}": use a Kubernetes service account name (lowercase letters, digits, "-" and ".", at most 253 characters)`,
    );
  }
  return value;
}
