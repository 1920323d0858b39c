//! Object stores for the mount tests, on the loopback, started by the tests
//! themselves: `s3s-fs` (an S3 server over a directory, anonymous or with
//! keys) and `moto` in server mode (signed requests against a second
//! implementation); uploads through `object_store`; nifuse mounts of a bucket.
//!
//! Both servers are installed by `scripts/setup-deps` (s3s-fs once per
//! machine in `~/.cache/nifuse-ci/s3s-fs/bin`, moto in the venv); a test
//! that cannot start them fails, saying so.

use std::ffi::OsStr;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ObjectStoreExt, PutPayload};

use super::Mount;
use super::json::parse_json;

/// Keys of the servers that check signatures.
pub const KEYS: (&str, &str) = ("nifuse-test-key", "nifuse-test-secret");

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A program of the test venv (`$NIFUSE_VENV`, else `.venv`; made by scripts/setup-deps).
pub fn venv_bin(name: &str) -> PathBuf {
    let venv = std::env::var_os("NIFUSE_VENV").map_or_else(|| repo().join(".venv"), PathBuf::from);
    let bin = venv.join("bin").join(name);
    assert!(
        bin.exists(),
        "{} is missing: run scripts/setup-deps (it installs moto[server], s3fs and nibabel)",
        bin.display()
    );
    bin
}

/// The s3s-fs binary: on PATH, or where scripts/setup-deps builds it.
fn s3s_fs() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let root = std::env::var_os("NIFUSE_S3S_ROOT")
        .map_or_else(|| home.join(".cache/nifuse-ci/s3s-fs"), PathBuf::from);
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::iter::once(root.join("bin"))
        .chain(std::env::split_paths(&path))
        .map(|d| d.join("s3s-fs"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("s3s-fs is not installed: run scripts/setup-deps"))
}

/// A free port on the loopback (bound and released: a server takes it next).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Waits until something accepts connections on `port`, or `child` exits.
fn wait_listening(port: u16, child: &mut Child, log: &Path) {
    let start = Instant::now();
    let addr = ("127.0.0.1", port);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the S3 server exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the S3 server did not listen on port {port} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An S3 server on the loopback, stopped on drop.
pub struct Server {
    /// Its port.
    pub port: u16,
    /// For s3s-fs: the directory it serves (buckets are its directories).
    pub root: Option<PathBuf>,
    /// Whether it takes signed requests (anonymous s3s-fs refuses them).
    signed: bool,
    args: Vec<String>,
    program: PathBuf,
    log: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn spawn(
        program: PathBuf,
        args: Vec<String>,
        port: u16,
        root: Option<PathBuf>,
        dir: tempfile::TempDir,
    ) -> Server {
        let signed = root.is_none() || args.iter().any(|a| a == "--access-key");
        let mut s = Server {
            signed,
            port,
            root,
            args,
            program,
            log: dir.path().join("server.log"),
            child: None,
            _dir: dir,
        };
        s.restart();
        s
    }

    /// s3s-fs serving a new directory, checking signatures with [`KEYS`] if `signed`.
    pub fn s3s(signed: bool) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        std::fs::create_dir(&root).expect("mkdir root");
        let port = free_port();
        let mut args = vec![
            "--host".into(),
            "127.0.0.1".into(),
            "--port".into(),
            port.to_string(),
        ];
        if signed {
            args.extend(["--access-key", KEYS.0, "--secret-key", KEYS.1].map(String::from));
        }
        args.push(root.display().to_string());
        Server::spawn(s3s_fs(), args, port, Some(root), dir)
    }

    /// moto in server mode (it takes any keys).
    pub fn moto() -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let args = vec![
            "-H".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
        ];
        Server::spawn(venv_bin("moto_server"), args, port, None, dir)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (and directory).
    pub fn restart(&mut self) {
        self.kill();
        let log = std::fs::File::create(&self.log).expect("server log");
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", self.program.display()));
        wait_listening(self.port, &mut child, &self.log);
        self.child = Some(child);
    }

    /// Makes bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        if let Some(root) = &self.root {
            std::fs::create_dir_all(root.join(name)).expect("bucket directory");
            return;
        }
        // moto tells services apart by the credential scope of the signature
        // (which it does not verify); object_store cannot create buckets.
        let mut c = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        write!(
            c,
            "PUT /{name} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential={}/20260101/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=0\r\n\r\n",
            self.port, KEYS.0
        )
        .expect("send");
        let mut reply = String::new();
        let _ = c.read_to_string(&mut reply);
        assert!(
            reply.starts_with("HTTP/1.1 200"),
            "creating bucket {name}: {reply}"
        );
    }

    /// An S3 client of `bucket`, signing with [`KEYS`] if the server takes them.
    pub fn client(&self, bucket: &str) -> AmazonS3 {
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id(KEYS.0)
            .with_secret_access_key(KEYS.1)
            .with_skip_signature(!self.signed)
            .with_allow_http(true)
            .build()
            .expect("S3 client")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    })
}

/// Uploads `bytes` as `key`.
pub fn put(s3: &AmazonS3, key: &str, bytes: &[u8]) {
    let path = object_store::path::Path::parse(key).expect("key");
    let payload = PutPayload::from(bytes.to_vec());
    runtime()
        .block_on(s3.put(&path, payload))
        .unwrap_or_else(|e| panic!("uploading {key}: {e}"));
}

/// Uploads every regular file under `dir` (not symlinks) as `prefix/RELATIVE/PATH`.
pub fn put_tree(s3: &AmazonS3, prefix: &str, dir: &Path) -> usize {
    let mut n = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let t = e.file_type().expect("file type");
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                let rel = e.path().strip_prefix(dir).expect("inside").to_path_buf();
                let key = format!("{prefix}/{}", rel.display());
                put(s3, &key, &std::fs::read(e.path()).expect("read"));
                n += 1;
            }
        }
    }
    n
}

/// nifuse serving `url` (`s3://BUCKET/PREFIX`) from `endpoint` in the
/// foreground, with `args`; signed with [`KEYS`] unless `args` has
/// `--no-sign-request`.
pub fn mount_s3(url: &str, endpoint: &str, args: &[&str]) -> Mount {
    let mut all = vec!["--endpoint-url", endpoint];
    all.extend_from_slice(args);
    let keys = [
        ("AWS_ACCESS_KEY_ID", KEYS.0),
        ("AWS_SECRET_ACCESS_KEY", KEYS.1),
    ];
    let env: &[(&str, &str)] = if args.contains(&"--no-sign-request") {
        &[]
    } else {
        &keys
    };
    Mount::source(|_| {}).start_source(OsStr::new(url), &all, env)
}

/// The fetched bytes and requests of image `path` in `.nifuse/stats`.
pub fn fetched(m: &Mount, path: &str) -> (u64, u64) {
    let stats = parse_json(&m.stats());
    let row = stats.image_row(path);
    (
        row.get("fetched_bytes").num() as u64,
        row.get("fetch_requests").num() as u64,
    )
}

/// A number among the totals of `.nifuse/stats`.
pub fn total(m: &Mount, key: &str) -> u64 {
    parse_json(&m.stats()).get("totals").get(key).num() as u64
}
