//! The load generator's arithmetic: a small fast random number generator,
//! the zipf sampler of account ids and percentiles of latency samples.

/// SplitMix64: cheap, good enough to pick accounts, seedable per client.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `1..=n`.
    pub(crate) fn uniform(&mut self, n: u64) -> u64 {
        1 + ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// Zipf over ranks `1..=n` with exponent `alpha`: P(k) ∝ k^-alpha. Keeps the
/// cumulative distribution (n f64s) and samples by binary search, which is
/// exact and, for 100,000 ranks, a few dozen nanoseconds a draw.
pub(crate) struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub(crate) fn new(n: u64, alpha: f64) -> Self {
        assert!(n >= 1, "zipf needs at least one rank");
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for k in 1..=n {
            sum += (k as f64).powf(-alpha);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Zipf { cdf }
    }

    /// A rank in `1..=n`.
    pub(crate) fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        let i = self.cdf.partition_point(|&c| c <= u);
        (i.min(self.cdf.len() - 1) + 1) as u64
    }
}

/// Nearest-rank percentile `p` (0–100) of `sorted` (ascending); 0 if empty.
pub(crate) fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Microseconds to milliseconds (3 decimals, since samples are whole µs).
pub(crate) fn ms(micros: u32) -> f64 {
    f64::from(micros) / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), 50);
        assert_eq!(percentile(&v, 99.0), 99);
        assert_eq!(percentile(&v, 100.0), 100);
        assert_eq!(percentile(&v, 0.0), 1);
        assert_eq!(percentile(&[], 50.0), 0);
        assert_eq!(percentile(&[7], 99.0), 7);
    }

    #[test]
    fn zipf_favours_low_ranks_and_stays_in_range() {
        let n = 100_000;
        let zipf = Zipf::new(n, 1.5);
        let mut rng = Rng::new(42);
        let draws = 200_000;
        let mut ones = 0;
        for _ in 0..draws {
            let k = zipf.sample(&mut rng);
            assert!((1..=n).contains(&k));
            ones += u32::from(k == 1);
        }
        // P(1) = 1 / H(n, 1.5) ≈ 1 / 2.606 ≈ 0.384 for n = 100,000.
        let p1 = f64::from(ones) / f64::from(draws);
        assert!((0.37..0.40).contains(&p1), "P(rank 1) = {p1}");
        for _ in 0..1000 {
            assert!((1..=n).contains(&rng.uniform(n)));
        }
    }
}
