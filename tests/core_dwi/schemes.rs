//! Generated gradient tables: directions, b-value schemes, and their text.

use super::case::Case;

/// Deterministic pseudo-random numbers.
pub struct Rng(pub u64);

impl Rng {
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.unit() * items.len() as f64) as usize]
    }

    /// A random direction written with 6 decimals (as converters write them).
    pub fn direction(&mut self) -> [String; 3] {
        loop {
            let v = [
                self.unit() * 2.0 - 1.0,
                self.unit() * 2.0 - 1.0,
                self.unit() * 2.0 - 1.0,
            ];
            let n = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
            if n > 0.1 && n <= 1.0 {
                return v.map(|c| format!("{:.6}", c / n));
            }
        }
    }
}

/// Writes b-values and vectors as text: one bval row; the vectors as 3 rows
/// or, with `by_volume`, as one row of 3 per volume (tabs and CRLF there).
pub fn tables(b: &[String], v: &[[String; 3]], by_volume: bool) -> (String, String) {
    let bval = b.join(" ") + "\n";
    let bvec = if by_volume {
        v.iter().map(|r| r.join("\t") + " \r\n").collect()
    } else {
        (0..3)
            .map(|a| {
                v.iter()
                    .map(|r| r[a].as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
                    + "\n"
            })
            .collect()
    };
    (bval, bvec)
}

/// A scheme from b-values (zero vectors for b = 0 when `zero_b0_vectors`).
pub fn scheme(rng: &mut Rng, b: &[f64], zero_b0_vectors: bool, by_volume: bool) -> Case {
    let zero = || ["0".to_string(), "0".into(), "0".into()];
    let v: Vec<[String; 3]> = b
        .iter()
        .map(|&b| {
            if b == 0.0 && zero_b0_vectors {
                zero()
            } else {
                rng.direction()
            }
        })
        .collect();
    let b: Vec<String> = b.iter().map(|b| b.to_string()).collect();
    let (bval, bvec) = tables(&b, &v, by_volume);
    Case::new(&bval, &bvec, b.len())
}

/// `count` volumes per shell around each of `shells` (integer jitter up to
/// `jitter`), and `b0` b=0 volumes (b of 0 or 5), shuffled.
pub fn multishell(rng: &mut Rng, shells: &[f64], count: usize, jitter: f64, b0: usize) -> Vec<f64> {
    let mut b: Vec<f64> = (0..b0).map(|_| rng.pick(&[0.0, 0.0, 5.0])).collect();
    for &s in shells {
        b.extend((0..count).map(|_| (s + (rng.unit() * 2.0 - 1.0) * jitter).round()));
    }
    for i in (1..b.len()).rev() {
        b.swap(i, (rng.unit() * (i + 1) as f64) as usize);
    }
    b
}
