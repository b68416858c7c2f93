//! Where formatted log lines are written: stderr, or a file that SIGHUP reopens so logrotate
//! can move the old one away (the `copytruncate`-free way).
//!
//! The logger and the signal handler share one [`Sink`]; reopening swaps the file under its
//! lock, so no line is split between two files.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

enum Target {
    Stderr,
    File { path: PathBuf, file: File },
}

/// A log destination that can be reopened.
pub struct Sink {
    target: Mutex<Target>,
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Sink {
    /// Writes to stderr.
    pub fn stderr() -> Self {
        Sink {
            target: Mutex::new(Target::Stderr),
        }
    }

    /// Appends to `path`, creating it if needed.
    pub fn file(path: &Path) -> io::Result<Self> {
        Ok(Sink {
            target: Mutex::new(Target::File {
                path: path.to_path_buf(),
                file: open(path)?,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Target> {
        // A panic while writing a log line leaves nothing half-updated worth refusing.
        self.target.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes one line. A failing file write falls back to stderr, so the line is not lost.
    pub fn write_line(&self, line: &str) {
        let mut target = self.lock();
        let written = match &mut *target {
            Target::Stderr => Err(()),
            Target::File { file, .. } => writeln!(file, "{line}").map_err(|_| ()),
        };
        if written.is_err() {
            let _ = writeln!(io::stderr().lock(), "{line}");
        }
    }

    /// Reopens the file at its path (after logrotate moved it); stderr needs nothing.
    /// On failure the old file stays in use.
    pub fn reopen(&self) -> io::Result<Option<PathBuf>> {
        let mut target = self.lock();
        match &mut *target {
            Target::Stderr => Ok(None),
            Target::File { path, file } => {
                *file = open(path)?;
                Ok(Some(path.clone()))
            }
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn reopen_follows_the_path_after_a_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("colo.log");
        let sink = Sink::file(&path).expect("open");
        sink.write_line("before");
        let rotated = dir.path().join("colo.log.1");
        std::fs::rename(&path, &rotated).expect("rename");
        sink.write_line("still old");
        assert_eq!(sink.reopen().expect("reopen"), Some(path.clone()));
        sink.write_line("after");
        let read = |p: &Path| std::fs::read_to_string(p).expect("read");
        assert_eq!(read(&rotated), "before\nstill old\n");
        assert_eq!(read(&path), "after\n");
        assert_eq!(Sink::stderr().reopen().expect("stderr"), None);
    }
}
