//! `s3://BUCKET[/PREFIX]`: the SOURCE form of an object-store prefix, and
//! how paths of the mounted tree map to keys under it.

use std::path::Path;

/// A bucket and the key prefix under it that is mounted as the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Url {
    /// The bucket name.
    pub bucket: String,
    /// The key prefix, without leading or trailing `/` ("" for the whole bucket).
    pub prefix: String,
}

/// Whether SOURCE names an object-store prefix rather than a local directory.
pub fn is_s3(source: &str) -> bool {
    source.starts_with("s3://")
}

impl S3Url {
    /// Parses `s3://BUCKET[/PREFIX]` (slashes around the prefix are dropped).
    pub fn parse(source: &str) -> Result<S3Url, String> {
        let rest = source
            .strip_prefix("s3://")
            .ok_or_else(|| format!("{source}: not an s3://BUCKET[/PREFIX] URL"))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(format!(
                "{source}: no bucket name (write s3://BUCKET[/PREFIX])"
            ));
        }
        if bucket
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '?' | '#' | '\\' | '@'))
        {
            return Err(format!("{source}: {bucket:?} is not a bucket name"));
        }
        let prefix = prefix.trim_matches('/');
        if !prefix.is_empty()
            && prefix
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == ".." || s.chars().any(char::is_control))
        {
            return Err(format!(
                "{source}: the prefix has an empty, `.` or `..` part, which a tree of keys cannot show"
            ));
        }
        Ok(S3Url {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
        })
    }

    /// `s3://BUCKET/PREFIX`, for messages and as the mount's name.
    pub fn describe(&self) -> String {
        if self.prefix.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.prefix)
        }
    }

    /// The key of the entry at `rel` (relative to the mounted prefix), or
    /// None if `rel` is not a path of UTF-8 names (keys are UTF-8).
    pub fn key(&self, rel: &Path) -> Option<String> {
        let mut key = self.prefix.clone();
        for part in rel.components() {
            let std::path::Component::Normal(name) = part else {
                return None;
            };
            if !key.is_empty() {
                key.push('/');
            }
            key.push_str(name.to_str()?);
        }
        Some(key)
    }

    /// The key prefix that lists directory `rel`: its key and `/`, or ""
    /// for the root of a whole bucket.
    pub fn dir_prefix(&self, rel: &Path) -> Option<String> {
        let key = self.key(rel)?;
        Some(if key.is_empty() { key } else { key + "/" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_and_prefix() {
        let u = S3Url::parse("s3://openneuro.org/ds000001").unwrap();
        assert_eq!(
            (u.bucket.as_str(), u.prefix.as_str()),
            ("openneuro.org", "ds000001")
        );
        assert_eq!(u.describe(), "s3://openneuro.org/ds000001");
        let u = S3Url::parse("s3://b/a/b/").unwrap();
        assert_eq!(u.prefix, "a/b");
        let u = S3Url::parse("s3://b").unwrap();
        assert_eq!((u.prefix.as_str(), u.describe().as_str()), ("", "s3://b"));
        assert_eq!(S3Url::parse("s3://b/").unwrap().prefix, "");
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(S3Url::parse("s3://").unwrap_err().contains("no bucket"));
        assert!(S3Url::parse("s3:///x").unwrap_err().contains("no bucket"));
        assert!(
            S3Url::parse("s3://a b/x")
                .unwrap_err()
                .contains("not a bucket")
        );
        assert!(S3Url::parse("s3://b/x//y").unwrap_err().contains("empty"));
        assert!(S3Url::parse("s3://b/x/../y").unwrap_err().contains("`..`"));
        assert!(S3Url::parse("/data").is_err());
        assert!(is_s3("s3://b") && !is_s3("/data") && !is_s3("s3:/b"));
    }

    #[test]
    fn keys_of_paths() {
        let u = S3Url::parse("s3://b/ds").unwrap();
        assert_eq!(u.key(Path::new("")).unwrap(), "ds");
        assert_eq!(u.key(Path::new("sub 1/ü.nii")).unwrap(), "ds/sub 1/ü.nii");
        assert_eq!(u.dir_prefix(Path::new("")).unwrap(), "ds/");
        assert_eq!(u.dir_prefix(Path::new("sub")).unwrap(), "ds/sub/");
        let whole = S3Url::parse("s3://b").unwrap();
        assert_eq!(whole.dir_prefix(Path::new("")).unwrap(), "");
        assert_eq!(whole.key(Path::new("a/x.nii")).unwrap(), "a/x.nii");
        assert_eq!(whole.key(Path::new("../x")), None);
    }
}
