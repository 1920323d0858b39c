//! Views of an image beyond its single volumes, as plain data; this part holds
//! the diffusion sidecars ([`dwi`]): parsing, per-selection files, b=0 and shells.

pub mod dwi;
