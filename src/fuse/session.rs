//! Mounting: the fuser session and its options, what nifuse asks of the
//! kernel at FUSE init, and the thread that tells the kernel what to forget.

use std::path::Path;
use std::sync::Arc;

use fuser::{INodeNo, KernelConfig, MountOption, SessionACL};

use super::FuseFs;
use crate::fs::{Fs, Invalidate};

/// Largest request the daemon lets the kernel send (it derives `max_pages`
/// from this): writes and read-ahead windows.
pub const MAX_REQUEST: u32 = 1 << 20;

/// Tells the kernel, from a thread of its own (never from inside a request),
/// to drop cached attributes and pages of the inodes `fs` reports changed.
fn start_invalidator(fs: &Fs, notifier: fuser::Notifier) -> std::io::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel::<Invalidate>();
    std::thread::Builder::new()
        .name("nifuse-inval".into())
        .spawn(move || {
            for what in rx {
                let result = match &what {
                    Invalidate::Inode(ino) => notifier.inval_inode(INodeNo(*ino), 0, 0),
                    Invalidate::Entry { parent, name } => {
                        notifier.inval_entry(INodeNo(*parent), name)
                    }
                };
                if let Err(e) = result {
                    log::debug!("invalidating {what:?}: {e}");
                }
            }
        })?;
    let tx = std::sync::Mutex::new(tx);
    fs.set_invalidator(Box::new(move |what| {
        if let Ok(tx) = tx.lock() {
            let _ = tx.send(what);
        }
    }));
    Ok(())
}

/// Who may use the mount besides its owner.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Access {
    /// The mounting user only (the FUSE default).
    #[default]
    Owner,
    /// Everybody (`-o allow_other`; needs `user_allow_other` in /etc/fuse.conf for non-root).
    All,
    /// The owner and root (`-o allow_root`).
    RootAndOwner,
}

/// How to mount, in plain terms.
#[derive(Clone, Debug, Default)]
pub struct MountSpec {
    /// The file system name `mount` shows (the SOURCE).
    pub fsname: String,
    /// Who may use the mount.
    pub access: Access,
    /// `noexec`.
    pub noexec: bool,
    /// `noatime`.
    pub noatime: bool,
    /// Other kernel mount options, passed as written (`max_read=262144`).
    pub custom: Vec<String>,
    /// Threads serving requests.
    pub threads: usize,
}

/// A live mount, not yet serving.
pub struct Mounted {
    session: fuser::Session<FuseFs>,
}

/// Ends a mount from another thread (a signal handler's).
pub struct Unmounter(fuser::SessionUnmounter);

impl Unmounter {
    /// Unmounts; the serving loop then returns.
    pub fn unmount(&mut self) -> std::io::Result<()> {
        self.0.unmount()
    }
}

impl Mounted {
    /// Something that unmounts this mount from another thread.
    pub fn unmounter(&mut self) -> Unmounter {
        Unmounter(self.session.unmount_callable())
    }

    /// Serves requests until the mount goes away.
    pub fn run(self) -> std::io::Result<()> {
        self.session.run()
    }
}

/// Mounts `fs` at `mountpoint` (read-only by refusal, kernel-checked
/// permissions, no devices or setuid) and starts the thread that tells the
/// kernel what to forget. Returns once the mount is live.
pub fn mount(fs: Arc<Fs>, mountpoint: &Path, spec: &MountSpec) -> std::io::Result<Mounted> {
    let mut config = fuser::Config::default();
    config.mount_options = vec![
        MountOption::FSName(spec.fsname.clone()),
        MountOption::Subtype("nifuse".into()),
        MountOption::DefaultPermissions,
        MountOption::NoDev,
        MountOption::NoSuid,
    ];
    if spec.noexec {
        config.mount_options.push(MountOption::NoExec);
    }
    if spec.noatime {
        config.mount_options.push(MountOption::NoAtime);
    }
    config
        .mount_options
        .extend(spec.custom.iter().map(|o| MountOption::CUSTOM(o.clone())));
    config.acl = match spec.access {
        Access::Owner => SessionACL::Owner,
        Access::All => SessionACL::All,
        Access::RootAndOwner => SessionACL::RootAndOwner,
    };
    let threads = spec.threads.max(1);
    config.n_threads = Some(threads);
    config.clone_fd = threads > 1;
    let session = fuser::Session::new(FuseFs::new(fs.clone()), mountpoint, &config)?;
    start_invalidator(&fs, session.notifier())?;
    Ok(Mounted { session })
}

/// Asks for large requests (the kernel derives `max_pages` from these) and
/// for readdirplus (so `ls -l` gets attributes with the listing).
pub(super) fn kernel_config(config: &mut KernelConfig) {
    let plus = fuser::InitFlags::FUSE_DO_READDIRPLUS | fuser::InitFlags::FUSE_READDIRPLUS_AUTO;
    if let Err(missing) = config.add_capabilities(plus) {
        log::info!("kernel lacks {missing:?}; listings use plain readdir");
    }
    // No FUSE_POSIX_ACL: nifuse has no ACLs, and with that capability the
    // kernel would ask the daemon for them in every permission check (where
    // the EOPNOTSUPP of section 4 would then fail the access itself).
    if let Err(max) = config.set_max_readahead(MAX_REQUEST) {
        let _ = config.set_max_readahead(max);
    }
    if let Err(max) = config.set_max_write(MAX_REQUEST) {
        let _ = config.set_max_write(max);
    }
}
