//! Reading an FSL `bval`/`bvec` pair: number tokens, rows, orientation and
//! counts, with errors that say which file and what to fix. The rules are
//! those of [`Gradients::parse`].

use std::fmt;

use super::{Gradients, Number};

/// Which file of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SidecarKind {
    /// `STEM.bval`, the b-values.
    Bval,
    /// `STEM.bvec`, the gradient directions.
    Bvec,
}

impl SidecarKind {
    /// The file's extension, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            SidecarKind::Bval => "bval",
            SidecarKind::Bvec => "bvec",
        }
    }
}

impl fmt::Display for SidecarKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// What is wrong with one file. Lines and values count from 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// No number at all (empty, or only blank lines).
    Empty,
    /// A token that is not a number.
    NotANumber {
        line: usize,
        column: usize,
        token: String,
    },
    /// A finite number too large for a double (`1e999`).
    OutOfRange {
        line: usize,
        column: usize,
        token: String,
    },
    /// A row with another count of numbers than the first.
    Ragged {
        first_line: usize,
        first_count: usize,
        line: usize,
        count: usize,
    },
    /// b-values neither in one row nor one per line.
    BvalShape { rows: usize, columns: usize },
    /// Vectors neither in 3 rows nor in rows of 3.
    BvecShape { rows: usize, columns: usize },
    /// Not one b-value per volume.
    BvalCount { found: usize, volumes: u64 },
    /// Not one vector per volume.
    BvecCount { found: usize, volumes: u64 },
}

/// "1 volume", "60 volumes".
fn counted(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => write!(f, "no numbers in the file (it is empty or blank)"),
            Problem::NotANumber {
                line,
                column,
                token,
            } => {
                write!(f, "line {line}, value {column}: {token} is not a number")
            }
            Problem::OutOfRange {
                line,
                column,
                token,
            } => {
                write!(
                    f,
                    "line {line}, value {column}: {token} is too large for a double"
                )
            }
            Problem::Ragged {
                first_line,
                first_count,
                line,
                count,
            } => write!(
                f,
                "line {line} has {} but line {first_line} has {first_count} \
                 (every row needs the same count)",
                counted(*count as u64, "value", "values")
            ),
            Problem::BvalShape { rows, columns } => write!(
                f,
                "{} of {}: b-values must be one row, or one value per line",
                counted(*rows as u64, "row", "rows"),
                counted(*columns as u64, "value", "values")
            ),
            Problem::BvecShape { rows, columns } => write!(
                f,
                "{} of {}: vectors must be 3 rows (x, y, z) of one value per volume, \
                 or one row of 3 values per volume",
                counted(*rows as u64, "row", "rows"),
                counted(*columns as u64, "value", "values")
            ),
            Problem::BvalCount { found, volumes } => write!(
                f,
                "{} for {} (one per volume needed)",
                counted(*found as u64, "b-value", "b-values"),
                counted(*volumes, "volume", "volumes")
            ),
            Problem::BvecCount { found, volumes } => write!(
                f,
                "{} for {} (one per volume needed)",
                counted(*found as u64, "vector", "vectors"),
                counted(*volumes, "volume", "volumes")
            ),
        }
    }
}

/// A bval/bvec pair that cannot serve: which file, and what is wrong with it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file} file: {problem}")]
pub struct SidecarError {
    /// The file at fault (the bval is checked first).
    pub file: SidecarKind,
    /// What is wrong with it.
    pub problem: Problem,
}

/// One non-blank line: its number (from 1) and its numbers.
struct Row {
    line: usize,
    values: Vec<Number>,
}

/// How a token is shown in an error: quoted, escaped, at most 40 bytes.
fn shown(token: &[u8]) -> String {
    const MAX: usize = 40;
    let cut = &token[..token.len().min(MAX)];
    let more = if token.len() > MAX { "..." } else { "" };
    format!("{:?}{more}", String::from_utf8_lossy(cut))
}

/// Whether `s` is `digits[.digits][e[+-]digits]` with at least one digit in
/// the mantissa (the sign is already stripped).
fn is_decimal(s: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let int = digits(s);
    let mut i = int;
    let mut frac = 0;
    if s.get(i) == Some(&b'.') {
        frac = digits(&s[i + 1..]);
        i += 1 + frac;
    }
    if int + frac == 0 {
        return false;
    }
    if matches!(s.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(s.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let exp = digits(&s[i..]);
        if exp == 0 {
            return false;
        }
        i += exp;
    }
    i == s.len()
}

/// One token as a [`Number`], or the problem with it.
fn number(token: &[u8], line: usize, column: usize) -> Result<Number, Problem> {
    let bad = || Problem::NotANumber {
        line,
        column,
        token: shown(token),
    };
    let unsigned = match token.first() {
        Some(b'+' | b'-') => &token[1..],
        _ => token,
    };
    let special = unsigned.eq_ignore_ascii_case(b"nan") || unsigned.eq_ignore_ascii_case(b"inf");
    if special && token.first() == Some(&b'+') {
        return Err(bad());
    }
    if !special && !is_decimal(unsigned) {
        return Err(bad());
    }
    // Only ASCII passed the checks above, so this is valid UTF-8.
    let text = std::str::from_utf8(token).map_err(|_| bad())?;
    let value: f64 = text.parse().map_err(|_| bad())?;
    if value.is_infinite() && !special {
        return Err(Problem::OutOfRange {
            line,
            column,
            token: shown(token),
        });
    }
    Ok(Number {
        text: text.into(),
        value,
    })
}

/// The non-blank rows of a file, all of the same length.
fn rows(bytes: &[u8]) -> Result<Vec<Row>, Problem> {
    let mut rows: Vec<Row> = Vec::new();
    for (i, text) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = i + 1;
        let values = text
            .split(|&b| matches!(b, b' ' | b'\t' | b'\r'))
            .filter(|t| !t.is_empty())
            .enumerate()
            .map(|(c, t)| number(t, line, c + 1))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            continue;
        }
        if let Some(first) = rows.first()
            && first.values.len() != values.len()
        {
            return Err(Problem::Ragged {
                first_line: first.line,
                first_count: first.values.len(),
                line,
                count: values.len(),
            });
        }
        rows.push(Row { line, values });
    }
    if rows.is_empty() {
        return Err(Problem::Empty);
    }
    Ok(rows)
}

/// The b-values of a bval file: one row, or a column.
fn bvals(bytes: &[u8], volumes: u64) -> Result<Vec<Number>, Problem> {
    let rows = rows(bytes)?;
    let columns = rows.first().map_or(0, |r| r.values.len());
    if rows.len() != 1 && columns != 1 {
        return Err(Problem::BvalShape {
            rows: rows.len(),
            columns,
        });
    }
    let values: Vec<Number> = rows.into_iter().flat_map(|r| r.values).collect();
    if values.len() as u64 != volumes {
        return Err(Problem::BvalCount {
            found: values.len(),
            volumes,
        });
    }
    Ok(values)
}

/// The vectors of a bvec file: 3 rows (x, y, z), or rows of 3.
fn bvecs(bytes: &[u8], volumes: u64) -> Result<Vec<[Number; 3]>, Problem> {
    let rows = rows(bytes)?;
    let columns = rows.first().map_or(0, |r| r.values.len());
    let vectors: Vec<[Number; 3]> = if rows.len() == 3 {
        let mut it = rows.into_iter().map(|r| r.values.into_iter());
        match (it.next(), it.next(), it.next()) {
            (Some(x), Some(y), Some(z)) => x.zip(y).zip(z).map(|((x, y), z)| [x, y, z]).collect(),
            _ => return Err(Problem::BvecShape { rows: 3, columns }),
        }
    } else if columns == 3 {
        let mut vectors = Vec::with_capacity(rows.len());
        for row in rows {
            let mut v = row.values.into_iter();
            if let (Some(x), Some(y), Some(z)) = (v.next(), v.next(), v.next()) {
                vectors.push([x, y, z]);
            }
        }
        vectors
    } else {
        return Err(Problem::BvecShape {
            rows: rows.len(),
            columns,
        });
    };
    if vectors.len() as u64 != volumes {
        return Err(Problem::BvecCount {
            found: vectors.len(),
            volumes,
        });
    }
    Ok(vectors)
}

impl Gradients {
    /// Reads a bval/bvec pair for an image of `n_vols` volumes. The bval file
    /// is checked first; the error names the first file at fault.
    ///
    /// The rules, which FSL (`read_ascii_matrix`) and MRtrix3
    /// (`load_bvecs_bvals`) both read the same way:
    /// - Lines end at `\n`; spaces, tabs and `\r` separate numbers (so CRLF line
    ///   ends and trailing spaces are fine); the last line needs no final
    ///   newline; lines holding no number are skipped wherever they are, as
    ///   MRtrix3 does (FSL stops at the first one: after the data, as here).
    /// - A number is `[+-]digits[.digits][e[+-]digits]` (either side of the point
    ///   may be empty, not both), or `nan`, `-nan`, `inf`, `-inf` in any case,
    ///   the special forms MRtrix3 reads; a finite form too large for a double
    ///   is an error (MRtrix3 refuses it too). Anything else is an error, also
    ///   the commas, semicolons and `#` comments that MRtrix3 alone accepts.
    /// - Every row has the same count of numbers.
    /// - b-values: one row, or one value per line (FSL and MRtrix3 both transpose
    ///   a column).
    /// - Vectors: 3 rows (x, y, z) of one value per volume, or one row of 3 per
    ///   volume. Three rows are always read as x, y, z, also when there are 3
    ///   volumes (a 3x3 file): FSL (`if (bvecs.Nrows() > 3) bvecs = bvecs.t()`)
    ///   and MRtrix3 (transposes only a file without 3 rows) do the same.
    /// - Each file holds exactly one entry per volume.
    pub fn parse(bval: &[u8], bvec: &[u8], n_vols: u64) -> Result<Gradients, SidecarError> {
        let bvals = bvals(bval, n_vols).map_err(|problem| SidecarError {
            file: SidecarKind::Bval,
            problem,
        })?;
        let bvecs = bvecs(bvec, n_vols).map_err(|problem| SidecarError {
            file: SidecarKind::Bvec,
            problem,
        })?;
        Ok(Gradients { bvals, bvecs })
    }
}
