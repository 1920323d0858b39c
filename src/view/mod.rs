//! Views: the files of `NAME.d/` besides the plain volumes, and how their bytes are made.
pub mod convert;
