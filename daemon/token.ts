/**
 * Token check in constant time: both sides are hashed to 32 bytes first, so neither the content nor the
 * length of the expected token leaks through timing.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

export function tokenMatches(expected: string, given: string | undefined): boolean {
  // Hash something even when no token was given, so that case takes the same time.
  const ok = timingSafeEqual(digest(expected), digest(given ?? ''));
  return ok && given !== undefined;
}
