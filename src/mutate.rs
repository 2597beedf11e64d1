//! Seeded byte mutation for the tests that feed decoders what no one wrote:
//! structure-aware where a test frames the result again (see
//! `gallery::fuzz_tests`), plain otherwise.

/// xorshift64: seeded, so a failing mutation can be replayed by its number.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// `payload`, changed the way decoders get surprised: flipped bits, special
/// bytes and words (lengths, counts, offsets), cuts, insertions, repeats.
pub(crate) fn mutate(rng: &mut Rng, payload: &[u8]) -> Vec<u8> {
    let mut p = payload.to_vec();
    for _ in 0..1 + rng.below(3) {
        let at = rng.below(p.len());
        match rng.below(6) {
            0 if !p.is_empty() => p[at] ^= 1 << rng.below(8),
            1 if !p.is_empty() => p[at] = [0x00, 0xFF, 0x7F, 0x80, 0x01][rng.below(5)],
            2 if p.len() >= 8 => {
                let word: u64 = [
                    0,
                    1,
                    u32::MAX as u64,
                    u64::MAX,
                    1 << 31,
                    1 << 40,
                    p.len() as u64,
                ][rng.below(7)];
                let at = at.min(p.len() - 8);
                let width = if rng.below(2) == 0 { 4 } else { 8 };
                p[at..at + width].copy_from_slice(&word.to_le_bytes()[..width]);
            }
            3 => p.truncate(at),
            4 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                p.splice(at..at, bytes);
            }
            _ if !p.is_empty() => {
                let end = (at + 1 + rng.below(32)).min(p.len());
                let chunk = p[at..end].to_vec();
                p.splice(at..at, chunk);
            }
            _ => {}
        }
    }
    p
}

/// Mutations per input: `METRICANN_FUZZ_ITERS`, or `default`.
pub(crate) fn iterations(default: usize) -> usize {
    std::env::var("METRICANN_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
