//! SOURCE of `nifuse mount`: a local directory or `s3://BUCKET[/PREFIX]`,
//! and the object-store settings (`--endpoint-url`, `--region`,
//! `--no-sign-request`, `--metadata-ttl`, also given inside `-o` as
//! `endpoint_url=`, `region=`, `no_sign_request`, `metadata_ttl=`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::MountArgs;
use crate::source::Store;
use crate::source::local::LocalStore;
use crate::source::s3::client::Options;
use crate::source::s3::{S3Store, S3Url, Settings, is_s3};

/// The default of `--metadata-ttl`, in seconds.
pub const DEFAULT_METADATA_TTL: u64 = 60;

/// The `-o key=value` settings of object stores.
pub const S3_KEYS: [&str; 3] = ["endpoint_url=", "region=", "metadata_ttl="];

/// The `-o` flag of object stores.
pub const S3_FLAG: &str = "no_sign_request";

/// Where the tree comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A local directory (canonical path).
    Local(PathBuf),
    /// A prefix of an object-store bucket.
    S3(S3Url),
}

impl Source {
    /// The source for messages and as the mount's name.
    pub fn describe(&self) -> String {
        match self {
            Source::Local(p) => p.display().to_string(),
            Source::S3(u) => u.describe(),
        }
    }

    /// The local directory, if it is one.
    pub fn local(&self) -> Option<&Path> {
        match self {
            Source::Local(p) => Some(p),
            Source::S3(_) => None,
        }
    }
}

/// Applies one object-store `-o` setting; false if `key` is not one.
pub fn apply_o_setting(args: &mut MountArgs, key: &str, value: &str) -> Result<bool, String> {
    match key {
        "endpoint_url" => args.endpoint_url = Some(value.to_string()),
        "region" => args.region = Some(value.to_string()),
        "metadata_ttl" => {
            args.metadata_ttl = value
                .parse()
                .map_err(|_| format!("-o metadata_ttl={value}: not a number of seconds"))?
        }
        _ => return Ok(false),
    }
    Ok(true)
}

/// The object store SOURCE names, or None for a local directory (checked by
/// the caller); object-store options given with a local directory are refused.
pub fn s3_source(args: &MountArgs) -> Result<Option<S3Url>, String> {
    let text = args.source.to_string_lossy();
    if is_s3(&text) {
        return S3Url::parse(&text).map(Some);
    }
    let given = [
        ("--endpoint-url", args.endpoint_url.is_some()),
        ("--region", args.region.is_some()),
        ("--no-sign-request", args.no_sign_request),
        ("--metadata-ttl", args.metadata_ttl != DEFAULT_METADATA_TTL),
    ];
    if let Some((name, _)) = given.iter().find(|(_, set)| *set) {
        return Err(format!(
            "{name} applies to object stores (SOURCE s3://BUCKET[/PREFIX]), not to {}",
            args.source.display()
        ));
    }
    Ok(None)
}

/// Request threads when `--threads` is not given: one per core, and for an
/// object store at least 16 (threads mostly wait for the network, and a
/// store that stalls must not leave none for other requests).
pub fn default_threads(source: &Source) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    match source {
        Source::Local(_) => cores,
        Source::S3(_) => cores.max(16),
    }
}

/// Opens the store of `source` in the serving process (an object store
/// starts its runtime here, after the fork) and returns it with the memory
/// left for image caches: an object store keeps a quarter of `cache_size`
/// for fetched blocks, so both together stay within `cache_size`.
pub fn open_store(
    source: &Source,
    args: &MountArgs,
    (uid, gid): (u32, u32),
    cache_size: u64,
) -> Result<(Arc<dyn Store>, u64), String> {
    match source {
        Source::Local(dir) => Ok((
            Arc::new(LocalStore::new(dir).map_err(|e| e.to_string())?),
            cache_size,
        )),
        Source::S3(url) => {
            let block_budget = cache_size / 4;
            let store = S3Store::connect(Settings {
                url: url.clone(),
                options: Options {
                    endpoint_url: args.endpoint_url.clone(),
                    region: args.region.clone(),
                    no_sign_request: args.no_sign_request,
                },
                metadata_ttl: Duration::from_secs(args.metadata_ttl),
                uid,
                gid,
                block_budget,
            })?;
            Ok((Arc::new(store), cache_size - block_budget))
        }
    }
}
