//! Tests of the lazy first pass and of verified reads.
