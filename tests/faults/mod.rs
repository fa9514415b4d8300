//! Faults and hostile input, on the real binary: each defect the hostile
//! test of the release build found (acknowledged data lost, a receiver one
//! client could take down, writes outside a directory, secrets in logs) is a
//! test here, with what went in and what came out counted.

mod file_sink;
mod receivers;
mod secrets;
mod tail;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A small tmpfs mounted on `dir` (root only), unmounted when dropped: a
/// disk that fills up on purpose.
pub struct SmallDisk {
    pub dir: PathBuf,
}

impl SmallDisk {
    pub fn mount(dir: &Path, bytes: usize) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = Command::new("mount").args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"]).arg(dir).status().unwrap();
        assert!(status.success(), "mount -t tmpfs failed");
        SmallDisk { dir: dir.to_path_buf() }
    }

    /// Fill the disk, with a file of its own.
    pub fn fill(&self) -> PathBuf {
        let filler = self.dir.join("filler");
        let mut file = std::fs::File::create(&filler).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
