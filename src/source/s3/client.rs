//! The connection to one bucket: an `object_store` S3 client with nifuse's
//! timeouts and retries, and the tokio runtime that drives it.
//!
//! FUSE request threads are not async: they hand futures to the one runtime
//! owned here ([`Client::run`]) and block until they finish, always within
//! [`HARD_BOUND`]. The runtime must be created in the process that serves
//! (after `mount` forks into the background): a forked child does not
//! inherit threads. Credentials, region and endpoint come from the options
//! or from the usual `AWS_*` environment variables.

use std::future::Future;
use std::sync::Arc;

use object_store::aws::{AmazonS3, AmazonS3Builder};

use super::errors::{HARD_BOUND, client_options, retry_config};

/// How to reach the store (from the command line; the environment fills in the rest).
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `--endpoint-url` (else `AWS_ENDPOINT_URL`, else AWS S3 of the region).
    pub endpoint_url: Option<String>,
    /// `--region` (else `AWS_REGION`, `AWS_DEFAULT_REGION`, else us-east-1).
    pub region: Option<String>,
    /// `--no-sign-request`: anonymous requests (public buckets).
    pub no_sign_request: bool,
}

/// One bucket's client and the runtime its requests run on.
pub struct Client {
    rt: tokio::runtime::Runtime,
    /// The S3 client.
    pub s3: Arc<AmazonS3>,
    /// The endpoint URL, for messages (`http://127.0.0.1:9000`).
    pub endpoint: String,
    /// The bucket.
    pub bucket: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Client {
    /// A client of `bucket`, with its runtime (two worker threads). Makes no request.
    pub fn new(bucket: &str, opts: &Options) -> Result<Client, String> {
        let region = opts
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let given = opts
            .endpoint_url
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL"));
        if let Some(url) = &given
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "endpoint {url:?} is not a URL: give one such as http://127.0.0.1:9000 or https://s3.example.org"
            ));
        }
        let endpoint = given
            .clone()
            .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"))
            .trim_end_matches('/')
            .to_string();
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&region)
            .with_retry(retry_config())
            .with_client_options(client_options(endpoint.starts_with("http://")));
        if given.is_some() {
            builder = builder.with_endpoint(&endpoint);
        }
        if opts.no_sign_request {
            builder = builder.with_skip_signature(true);
        }
        let s3 = builder
            .build()
            .map_err(|e| format!("s3://{bucket} at {endpoint}: {e}"))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("nifuse-s3")
            .enable_all()
            .build()
            .map_err(|e| format!("cannot start the object-store runtime: {e}"))?;
        Ok(Client {
            rt,
            s3: Arc::new(s3),
            endpoint,
            bucket: bucket.to_string(),
        })
    }

    /// Runs `fut` on the runtime from a thread outside it and waits for it;
    /// None if it did not finish within [`HARD_BOUND`].
    pub fn run<T>(&self, fut: impl Future<Output = T>) -> Option<T> {
        self.rt
            .block_on(async { tokio::time::timeout(HARD_BOUND, fut).await })
            .ok()
    }

    /// The runtime, to spawn fetches on.
    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }

    /// `ENDPOINT BUCKET/KEY`, naming one object in messages.
    pub fn name(&self, key: &str) -> String {
        format!("{} {}/{key}", self.endpoint, self.bucket)
    }

    /// `s3://HOST[:PORT][/PATH]/BUCKET/KEY`: the object's locator (gzip index key).
    pub fn locator(&self, key: &str) -> String {
        let host = self
            .endpoint
            .split_once("://")
            .map_or(self.endpoint.as_str(), |(_, h)| h);
        format!("s3://{host}/{}/{key}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_name_objects_and_locators() {
        let opts = Options {
            endpoint_url: Some("http://127.0.0.1:9000/".into()),
            no_sign_request: true,
            ..Options::default()
        };
        let c = Client::new("b", &opts).unwrap();
        assert_eq!(c.endpoint, "http://127.0.0.1:9000");
        assert_eq!(c.name("ds/x.nii"), "http://127.0.0.1:9000 b/ds/x.nii");
        assert_eq!(c.locator("ds/x.nii"), "s3://127.0.0.1:9000/b/ds/x.nii");
        let opts = Options {
            region: Some("eu-west-1".into()),
            endpoint_url: None,
            no_sign_request: true,
        };
        if env("AWS_ENDPOINT_URL").is_none() {
            let c = Client::new("openneuro.org", &opts).unwrap();
            assert_eq!(
                c.locator("ds1/a.nii.gz"),
                "s3://s3.eu-west-1.amazonaws.com/openneuro.org/ds1/a.nii.gz"
            );
        }
        let bad = Options {
            endpoint_url: Some("127.0.0.1:9000".into()),
            ..Options::default()
        };
        assert!(Client::new("b", &bad).err().unwrap().contains("not a URL"));
    }
}
