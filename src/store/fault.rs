//! Faults injected into a store's commit, for tests that stop it at each step.
//!
//! A store counts the steps of its commits (a file write, a file sync, a
//! rename, a directory sync, a delete) in a [`Faults`] plan; at the planned
//! step it either fails, the way a full disk fails a write (the store's own
//! clean-up runs and the old state must remain), or crashes, the way a killed
//! process or a power cut stops it (nothing after the step runs, clean-up
//! included; what is on disk must open as the old state or the new one).

use std::cell::Cell;
use std::io::{Error, ErrorKind};

/// What happens at the planned step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// The step fails with an I/O error (a full disk).
    Fail,
    /// The commit stops before the step, leaving everything as it is.
    Crash,
}

/// Counts a store's commit steps and injects one fault (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    steps: Cell<u64>,
    at: Option<(u64, FaultKind)>,
    crashed: Cell<bool>,
}

impl Faults {
    /// A plan that injects `kind` at step `step`, counted from 0 from when the
    /// store is given it.
    pub fn at(step: u64, kind: FaultKind) -> Self {
        Faults {
            at: Some((step, kind)),
            ..Faults::default()
        }
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps.get()
    }

    /// Whether the planned crash happened: the store then does nothing more.
    pub fn crashed(&self) -> bool {
        self.crashed.get()
    }

    /// Takes step `what`: an error where the plan puts a fault (or a crash
    /// happened before), otherwise nothing.
    pub fn step(&self, what: &str) -> std::io::Result<()> {
        if self.crashed.get() {
            return Err(Error::other("the store crashed (an injected fault)"));
        }
        let n = self.steps.get();
        self.steps.set(n + 1);
        match self.at {
            Some((k, FaultKind::Fail)) if k == n => Err(Error::new(
                ErrorKind::StorageFull,
                format!("injected failure at step {n} ({what})"),
            )),
            Some((k, FaultKind::Crash)) if k == n => {
                self.crashed.set(true);
                Err(Error::other(format!("injected crash at step {n} ({what})")))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_steps_and_fires_once_where_planned() {
        let none = Faults::default();
        assert!((0..5).all(|_| none.step("w").is_ok()));
        assert_eq!(none.steps(), 5);

        let fail = Faults::at(2, FaultKind::Fail);
        assert!(fail.step("a").is_ok() && fail.step("b").is_ok());
        let err = fail.step("c").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::StorageFull);
        assert!(err.to_string().contains("step 2 (c)"), "{err}");
        assert!(fail.step("d").is_ok() && !fail.crashed());

        let crash = Faults::at(0, FaultKind::Crash);
        assert!(crash.step("a").is_err() && crash.crashed());
        assert!(crash.step("b").is_err(), "nothing runs after a crash");
    }
}
