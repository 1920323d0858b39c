//! The JSON document of `MOUNTPOINT/.nifuse/stats`.
//!
//! ```json
//! {"images": [{"path": "sub-01/bold.nii.gz", "volumes": 200, "compressed": true,
//!              "cache_mode": "fill", "cache_state": "full", "cache_bytes": 36864000,
//!              "hits": 412, "misses": 1, "index": "complete",
//!              "pass": {"state": "complete", "decoded_bytes": 73728352, "total_bytes": 73728352,
//!                       "verified_bytes": 73728352,
//!                       "members": [{"count": 1, "from": 0, "to": 73728352, "state": "verified"}]}}],
//!  "totals": {"images": 1, "cached_images": 1, "cache_bytes": 36864000,
//!             "cache_budget": 6442450944, "hits": 412, "misses": 1}}
//! ```
//!
//! `pass` (null for uncompressed images) is the first pass through a gzip
//! stream: `state` is `not started`, `running` (inflating now or queued),
//! `paused` (stopped partway; the next read goes on), `complete` or `failed`;
//! `members` lists runs of gzip members by state (`verified`: CRC-32 and
//! length matched; `unverified`: not checked yet; `failed`), with their
//! decoded byte range (`count`: members in a verified run); `inflated_bytes`
//! counts every byte inflated for the image so far, by the pass and by reads.
//!
//! An object store adds to each image `fetched_bytes` and `fetch_requests`
//! (its header and data objects), and to the totals these two, the listing
//! requests and the memory of fetched blocks (`block_cache_bytes`, `block_cache_budget`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::image::Image;
use super::json_string;
use crate::cache::{Caches, SlotStats};
use crate::source::{FetchStats, Fetched};

/// The index state of an image, as shown in stats.
/// The gzip index state of `image` (a saved index is loaded to tell).
fn index_state(image: &Image) -> String {
    use crate::source::gzindex::IndexState;
    if !image.data.is_gzip() {
        return "\"not compressed\"".to_string();
    }
    let layout = &image.layout;
    let text = match image.data.gzip().map(|gz| gz.state()) {
        None | Some(IndexState::None) => "none".to_string(),
        Some(IndexState::Complete { .. }) => "complete".to_string(),
        Some(IndexState::Partial { covered_bytes }) => {
            let vols = (0..layout.n_vols())
                .take_while(|&k| {
                    layout
                        .vol_source_range(k)
                        .is_some_and(|r| r.end <= covered_bytes)
                })
                .count();
            format!("partial up to {vols} volumes")
        }
    };
    json_string(&text)
}

/// The first pass through a compressed image, as JSON (`null` otherwise).
fn pass_state(image: &Image) -> String {
    use crate::source::gzindex::Outcome;
    let Some(gz) = image.data.gzip() else {
        return "null".to_string();
    };
    let report = gz.pass_report();
    let state = match (&report.outcome, report.running, report.decoded) {
        (Some(Outcome::Complete { .. }), _, _) => "complete",
        (Some(Outcome::Failed(_)), _, _) => "failed",
        (None, true, _) => "running",
        (None, false, 0) => "not started",
        (None, false, _) => "paused",
    };
    let mut runs = Vec::new();
    if report.members_verified > 0 {
        runs.push(format!(
            "{{\"count\": {}, \"from\": 0, \"to\": {}, \"state\": \"verified\"}}",
            report.members_verified, report.verified
        ));
    }
    let rest = match &report.outcome {
        Some(Outcome::Failed(_)) => Some("failed"),
        None if report.decoded > report.verified => Some("unverified"),
        _ => None,
    };
    if let Some(s) = rest {
        runs.push(format!(
            "{{\"count\": 1, \"from\": {}, \"to\": {}, \"state\": \"{s}\"}}",
            report.verified,
            report.decoded.max(report.verified)
        ));
    }
    let total = report.total.map_or("null".to_string(), |t| t.to_string());
    format!(
        "{{\"state\": \"{state}\", \"decoded_bytes\": {}, \"total_bytes\": {total}, \
         \"verified_bytes\": {}, \"members\": [{}], \"inflated_bytes\": {}}}",
        report.decoded,
        report.verified,
        runs.join(", "),
        gz.inflated_bytes()
    )
}

/// `, "fetched_bytes": N, "fetch_requests": M` of one image (its header
/// and data files), or nothing for a local store.
fn image_fetched(image: &Image, fetched: Option<&FetchStats>) -> String {
    let Some(f) = fetched else {
        return String::new();
    };
    let mut sum = Fetched::default();
    let data = image.data.rel();
    for p in std::iter::once(image.header_path.as_path())
        .chain((data != image.header_path).then_some(data))
    {
        let c = f.per_path.get(p).copied().unwrap_or_default();
        sum.bytes += c.bytes;
        sum.requests += c.requests;
    }
    format!(
        ", \"fetched_bytes\": {}, \"fetch_requests\": {}",
        sum.bytes, sum.requests
    )
}

/// The totals of an object store's fetches, or nothing for a local store.
fn total_fetched(fetched: Option<&FetchStats>) -> String {
    fetched.map_or_else(String::new, |f| {
        format!(
            ", \"fetched_bytes\": {}, \"fetch_requests\": {}, \"list_requests\": {}, \
             \"block_cache_bytes\": {}, \"block_cache_budget\": {}",
            f.total.bytes,
            f.total.requests,
            f.list_requests,
            f.block_cache_bytes,
            f.block_cache_budget
        )
    })
}

/// Renders the stats of the known `images` and their `caches`, and what an
/// object store `fetched`.
pub fn render(
    images: &[(PathBuf, Arc<Image>)],
    caches: &Caches,
    fetched: Option<&FetchStats>,
) -> String {
    let cache_stats: BTreeMap<PathBuf, SlotStats> = caches
        .stats()
        .into_iter()
        .map(|s| (s.path.clone(), s))
        .collect();
    let mut rows = Vec::new();
    let (mut bytes, mut hits, mut misses, mut cached) = (0u64, 0u64, 0u64, 0u64);
    for (path, image) in images {
        let s = cache_stats.get(path);
        let mode = s.map_or_else(|| caches.mode(path), |s| s.mode);
        let (state, b, h, m) =
            s.map_or(("empty", 0, 0, 0), |s| (s.state, s.bytes, s.hits, s.misses));
        bytes += b;
        hits += h;
        misses += m;
        cached += u64::from(state != "empty");
        rows.push(format!(
            "    {{\"path\": {}, \"volumes\": {}, \"compressed\": {}, \"cache_mode\": \"{}\", \
             \"cache_state\": \"{state}\", \"cache_bytes\": {b}, \"hits\": {h}, \"misses\": {m}, \
             \"index\": {}, \"pass\": {}{}}}",
            json_string(&path.to_string_lossy()),
            image.layout.n_vols(),
            image.data.is_gzip(),
            mode.as_str(),
            index_state(image),
            pass_state(image),
            image_fetched(image, fetched),
        ));
    }
    format!(
        "{{\n  \"images\": [\n{}\n  ],\n  \"totals\": {{\"images\": {}, \"cached_images\": {cached}, \
         \"cache_bytes\": {bytes}, \"cache_budget\": {}, \"hits\": {hits}, \"misses\": {misses}{}}}\n}}\n",
        rows.join(",\n"),
        images.len(),
        caches.budget(),
        total_fetched(fetched),
    )
}
