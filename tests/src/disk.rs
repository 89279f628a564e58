//! A real, small file system for fault tests: a tmpfs of a chosen size
//! mounted on a folder, which a test can fill, grow and remount read-only.
//! The kernel then answers writes with `ENOSPC` and `EROFS` exactly as a
//! full or read-only disk would; nothing is simulated. Mounting needs root
//! with `CAP_SYS_ADMIN` (CI runs so); without it the test fails and says
//! why, like the PostgreSQL tests when the database is down.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug)]
pub struct SmallDisk {
    path: PathBuf,
}

fn mount(args: &[&str]) {
    let output = Command::new("mount")
        .args(args)
        .output()
        .unwrap_or_else(|err| panic!("running mount {args:?}: {err}"));
    assert!(
        output.status.success(),
        "mount {args:?} failed: {}. The disk-fault tests mount a small tmpfs \
         and need root with CAP_SYS_ADMIN.",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

impl SmallDisk {
    /// Mounts a tmpfs of `bytes` (rounded up to whole pages) on `path`,
    /// creating the folder.
    pub fn mount(path: &Path, bytes: u64) -> Self {
        std::fs::create_dir_all(path).expect("mount point");
        let target = path.to_str().expect("a UTF-8 path");
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={bytes}"),
            "seedling-test",
            target,
        ]);
        Self {
            path: path.to_path_buf(),
        }
    }

    fn remount(&self, options: &str) {
        let target = self.path.to_str().expect("a UTF-8 path");
        mount(&["-o", &format!("remount,{options}"), target]);
    }

    /// Grows (or shrinks) the file system to `bytes`, keeping its files.
    pub fn resize(&self, bytes: u64) {
        self.remount(&format!("size={bytes}"));
    }

    pub fn read_only(&self) {
        self.remount("ro");
    }

    pub fn read_write(&self) {
        self.remount("rw");
    }

    /// Writes a file until the kernel says the disk is full; returns it so
    /// the test can free the space again.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let mut file = std::fs::File::create(&filler).expect("create the filler");
        let block = vec![0u8; 4096];
        loop {
            match file.write_all(&block) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::StorageFull => break,
                Err(err) => panic!("filling the disk: {err}"),
            }
        }
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazily, so a file still open elsewhere does not keep it mounted.
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}
