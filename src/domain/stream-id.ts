/**
 * Orders event stream ids. Ids are opaque but increasing: the embedded store
 * uses integers ("17"), Redis uses "<ms>-<seq>" ("1768467600000-3"); both
 * compare part by part as integers.
 */
export function compareStreamIds(a: string, b: string): number {
  const pa = a.split("-");
  const pb = b.split("-");
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = BigInt(pa[i] ?? "0");
    const y = BigInt(pb[i] ?? "0");
    if (x !== y) return x < y ? -1 : 1;
  }
  return 0;
}
