//! The best epoch's bundle of a resumed run.
//!
//! --model-out is copied from `ckpt_dir/best.bundle` at the end of a run. A
//! resumed run must find there its best epoch so far, in case no later epoch
//! beats it: the checkpoint may come from another directory (so there is no
//! best.bundle yet), or from a run whose later epochs wrote a best.bundle this
//! run is about to replace.

use std::fs;
use std::path::Path;

use metricann::{Error, Result};

use super::{io, write_file};

/// Writes `ckpt_dir/best.bundle` from the best epoch's checkpoint: the resumed
/// `checkpoint` itself when it is the best epoch, else `epoch-NNN.bundle`
/// beside it. When that is gone, a best.bundle already in `ckpt_dir` stays.
pub(super) fn restore(
    checkpoint: &Path,
    epoch: usize,
    best_epoch: usize,
    ckpt_dir: &Path,
) -> Result<()> {
    let source = if best_epoch == epoch {
        checkpoint.to_path_buf()
    } else {
        checkpoint.with_file_name(format!("epoch-{best_epoch:03}.bundle"))
    };
    let best_path = ckpt_dir.join("best.bundle");
    if source.exists() {
        let bytes = fs::read(&source).map_err(io(&source))?;
        return write_file(&best_path, &bytes);
    }
    if best_path.exists() {
        tracing::warn!(best = %best_path.display(), missing = %source.display(),
            "the best epoch's checkpoint is gone: keeping the best.bundle already there");
        return Ok(());
    }
    Err(Error::BadInput(format!(
        "resuming needs the best epoch so far (epoch {best_epoch}) as {} or {}: copy it there",
        source.display(),
        best_path.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        fs::write(path, text).unwrap();
    }

    fn best(dir: &Path) -> String {
        fs::read_to_string(dir.join("best.bundle")).unwrap()
    }

    #[test]
    fn the_resumed_checkpoint_is_the_best_when_its_epoch_is() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let checkpoint = from.path().join("copied.bundle");
        write(&checkpoint, "epoch 2");
        write(
            &to.path().join("best.bundle"),
            "a later epoch of another run",
        );
        restore(&checkpoint, 2, 2, to.path()).unwrap();
        assert_eq!(best(to.path()), "epoch 2");
    }

    #[test]
    fn an_earlier_best_epoch_comes_from_beside_the_checkpoint() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        write(&from.path().join("epoch-001.bundle"), "epoch 1");
        write(&from.path().join("epoch-002.bundle"), "epoch 2");
        restore(&from.path().join("epoch-002.bundle"), 2, 1, to.path()).unwrap();
        assert_eq!(best(to.path()), "epoch 1");
    }

    #[test]
    fn a_missing_best_epoch_keeps_the_best_bundle_there_or_says_what_is_missing() {
        let (from, to) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let checkpoint = from.path().join("epoch-003.bundle");
        write(&checkpoint, "epoch 3");
        let err = restore(&checkpoint, 3, 1, to.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("epoch-001.bundle"), "{err}");
        assert!(!to.path().join("best.bundle").exists());

        write(&to.path().join("best.bundle"), "kept");
        restore(&checkpoint, 3, 1, to.path()).unwrap();
        assert_eq!(best(to.path()), "kept");
    }
}
