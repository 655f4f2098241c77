/** One kind of value masked at one place, and how many times. */
export interface Redaction {
  /** What was masked: 'authorization', 'cookie', 'token', 'ssn', 'email', … (see docs/redaction.md). */
  kind: string;
  /** Where: 'header:authorization', 'query:access_token', 'body:$.patient.birthDate', 'text', … */
  location: string;
  count: number;
}

/** The text that replaces a masked value. */
export function marker(kind: string): string {
  return `[REDACTED:${kind}]`;
}

/** Matches one marker anywhere in a string (global: use with split/replace only). */
export const MARKER_SPLIT = /(\[REDACTED:[a-z][a-z0-9-]*\])/;
const MARKER_EXACT = /^\[REDACTED:[a-z][a-z0-9-]*\]$/;

/** True when the whole string is one marker: it was redacted already and stays as it is. */
export function isMarker(value: string): boolean {
  return value.length < 48 && MARKER_EXACT.test(value);
}

/** Collects redactions, adding up counts of the same kind at the same location. */
export class Applied {
  private readonly byKey = new Map<string, Redaction>();

  add(kind: string, location: string, count = 1): void {
    if (count <= 0) return;
    const key = `${kind}\u0000${location}`;
    const hit = this.byKey.get(key);
    if (hit) hit.count += count;
    else this.byKey.set(key, { kind, location, count });
  }

  addAll(list: readonly Redaction[], location?: string): void {
    for (const r of list) this.add(r.kind, location ?? r.location, r.count);
  }

  get size(): number {
    return this.byKey.size;
  }

  list(): Redaction[] {
    return [...this.byKey.values()].map((r) => ({ ...r }));
  }
}

/** Shortens a key or name used inside a location, so locations stay readable and bounded. */
export function locationPart(name: string): string {
  const clean = name.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 63)}…` : clean;
}
