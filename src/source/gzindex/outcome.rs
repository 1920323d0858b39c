//! What the first pass says about a file: the verify modes that decide what
//! may be served before a member's CRC-32 was checked, why a pass stopped, and
//! how it ended.

use super::{GzError, TRAILER_MISMATCH};

/// How reads are checked against the gzip members' CRC-32 (SPEC 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Verify {
    /// Serve bytes as the pass decodes them; a member whose CRC then fails
    /// fails every later read of it.
    #[default]
    Background,
    /// Serve nothing of a member before its CRC-32 was checked.
    Strict,
}

impl Verify {
    /// The option value: `background` or `strict`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verify::Background => "background",
            Verify::Strict => "strict",
        }
    }
}

impl std::str::FromStr for Verify {
    type Err = String;
    fn from_str(s: &str) -> Result<Verify, String> {
        match s {
            "background" => Ok(Verify::Background),
            "strict" => Ok(Verify::Strict),
            other => Err(format!(
                "verify must be background or strict, not {other:?}"
            )),
        }
    }
}

/// Why a pass stopped before the end of the stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailKind {
    /// The file ends after this many decoded bytes.
    Truncated { available: u64 },
    /// Inflate failed, or a member's CRC-32/ISIZE did not match its trailer.
    Corrupt { at_compressed: u64, msg: String },
}

/// A pass that ended on damage, and what is still servable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailKind,
    /// Background mode serves decoded bytes before this offset.
    pub limit: u64,
    /// Decoded bytes before this offset lie in members whose CRC matched
    /// (all that strict mode serves).
    pub verified: u64,
}

impl Failure {
    /// Whether a member's CRC-32 or length contradicted its trailer.
    pub fn trailer_mismatch(&self) -> bool {
        matches!(&self.kind, FailKind::Corrupt { msg, .. } if msg.starts_with(TRAILER_MISMATCH))
    }

    /// The error a read past the limit gets.
    pub fn error(&self) -> GzError {
        match &self.kind {
            FailKind::Truncated { available } => GzError::Truncated {
                available: *available,
            },
            FailKind::Corrupt { at_compressed, msg } => GzError::Corrupt {
                at_compressed: *at_compressed,
                msg: msg.clone(),
            },
        }
    }
}

/// How a pass ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Every member inflated and matched its trailer.
    Complete {
        total: u64,
    },
    Failed(Failure),
}
