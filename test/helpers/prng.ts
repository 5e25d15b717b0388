/**
 * The seeded PRNG (mulberry32) of the randomized tests, so a run replays from its printed
 * seed, and of the bench's workloads (scripts/bench imports it from here: one generator, so
 * a seed means the same sequence everywhere). No imports; nothing else belongs here.
 */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
