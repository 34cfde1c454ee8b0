// Fuzzy path matching with fzf's scoring (the algorithm Blaxel's sandbox-api uses through fzf's Go
// package): a greedy forward scan for the pattern, a backward scan for the shortest match, then fzf's
// score with its boundary, camel-case and consecutive-character bonuses. Case-insensitive.

const SCORE_MATCH = 16;
const SCORE_GAP_START = -3;
const SCORE_GAP_EXTENSION = -1;
const BONUS_BOUNDARY = SCORE_MATCH / 2;
const BONUS_NON_WORD = SCORE_MATCH / 2;
const BONUS_CAMEL123 = BONUS_BOUNDARY + SCORE_GAP_EXTENSION;
const BONUS_CONSECUTIVE = -(SCORE_GAP_START + SCORE_GAP_EXTENSION);
const BONUS_FIRST_CHAR_MULTIPLIER = 2;
const BONUS_BOUNDARY_WHITE = BONUS_BOUNDARY + 2;
const BONUS_BOUNDARY_DELIMITER = BONUS_BOUNDARY + 1;

const enum CharClass {
  White,
  NonWord,
  Delimiter,
  Lower,
  Upper,
  Letter,
  Number,
}

function classOf(ch: string): CharClass {
  if (ch >= "a" && ch <= "z") return CharClass.Lower;
  if (ch >= "A" && ch <= "Z") return CharClass.Upper;
  if (ch >= "0" && ch <= "9") return CharClass.Number;
  if (ch === " " || ch === "\t" || ch === "\n" || ch === "\r" || ch === "\v" || ch === "\f") return CharClass.White;
  if ("/,:;|".includes(ch)) return CharClass.Delimiter;
  if (/\p{L}/u.test(ch)) return CharClass.Letter;
  if (/\p{N}/u.test(ch)) return CharClass.Number;
  return CharClass.NonWord;
}

function bonusFor(prev: CharClass, cls: CharClass): number {
  if (cls > CharClass.NonWord) {
    if (prev === CharClass.White) return BONUS_BOUNDARY_WHITE;
    if (prev === CharClass.Delimiter) return BONUS_BOUNDARY_DELIMITER;
    if (prev === CharClass.NonWord) return BONUS_BOUNDARY;
  }
  if ((prev === CharClass.Lower && cls === CharClass.Upper) || (prev !== CharClass.Number && cls === CharClass.Number)) {
    return BONUS_CAMEL123;
  }
  if (cls === CharClass.NonWord || cls === CharClass.Delimiter) return BONUS_NON_WORD;
  if (cls === CharClass.White) return BONUS_BOUNDARY_WHITE;
  return 0;
}

export interface FuzzyResult {
  score: number;
  start: number;
  end: number;
}

/** Scores `text` against `pattern`; null when not every pattern character occurs in order. */
export function fuzzyMatch(text: string, pattern: string): FuzzyResult | null {
  const t = Array.from(text);
  const p = Array.from(pattern.toLowerCase());
  if (p.length === 0) return { score: 0, start: 0, end: 0 };
  const lower = t.map((c) => c.toLowerCase());
  // Forward scan: the first position where the whole pattern has matched.
  let pidx = 0;
  let sidx = -1;
  let eidx = -1;
  for (let i = 0; i < lower.length; i++) {
    if (lower[i] === p[pidx]) {
      if (sidx < 0) sidx = i;
      pidx++;
      if (pidx === p.length) {
        eidx = i + 1;
        break;
      }
    }
  }
  if (sidx < 0 || eidx < 0) return null;
  // Backward scan from the end: the latest start gives the shortest span.
  pidx = p.length - 1;
  for (let i = eidx - 1; i >= sidx; i--) {
    if (lower[i] === p[pidx]) {
      pidx--;
      if (pidx < 0) {
        sidx = i;
        break;
      }
    }
  }
  // fzf's calculateScore over [sidx, eidx).
  let score = 0;
  let inGap = false;
  let consecutive = 0;
  let firstBonus = 0;
  pidx = 0;
  let prevClass = sidx > 0 ? classOf(t[sidx - 1]!) : CharClass.White;
  for (let i = sidx; i < eidx; i++) {
    const cls = classOf(t[i]!);
    if (lower[i] === p[pidx]) {
      score += SCORE_MATCH;
      let bonus = bonusFor(prevClass, cls);
      if (consecutive === 0) {
        firstBonus = bonus;
      } else {
        if (bonus >= BONUS_BOUNDARY && bonus > firstBonus) firstBonus = bonus;
        bonus = Math.max(bonus, firstBonus, BONUS_CONSECUTIVE);
      }
      score += pidx === 0 ? bonus * BONUS_FIRST_CHAR_MULTIPLIER : bonus;
      inGap = false;
      consecutive++;
      pidx++;
    } else {
      score += inGap ? SCORE_GAP_EXTENSION : SCORE_GAP_START;
      inGap = true;
      consecutive = 0;
      firstBonus = 0;
    }
    prevClass = cls;
  }
  return { score, start: sidx, end: eidx };
}
