//! One error type for the whole library. Every variant names what was wrong, and
//! maps to a stable `code` that the JS bindings and the CLI exit codes rely on.

use std::path::PathBuf;

/// Everything that can go wrong in MetricANN.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An image could not be decoded or has unusable dimensions.
    #[error("bad image {name}: {reason}")]
    BadImage { name: String, reason: String },

    /// Input that is not an image but still wrong: a NaN vector, an empty class, a bad flag value.
    #[error("bad input: {0}")]
    BadInput(String),

    /// A stored blob (bundle, segment, class record, manifest) failed its checks.
    #[error("corrupt {name}: {reason}")]
    Corrupt { name: String, reason: String },

    /// An index or gallery was built by another model than the one offered.
    #[error(
        "model mismatch: {what} was built by model {found}, but the loaded model is {expected}"
    )]
    ModelMismatch {
        what: String,
        expected: String,
        found: String,
    },

    /// A class label, vector id or stored record that does not exist.
    #[error("not found: {0}")]
    NotFound(String),

    /// A class label that is already taken.
    #[error("already exists: {0}")]
    AlreadyExists(String),

    /// The storage refused to take more data.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),

    /// Another writer holds the gallery.
    #[error("locked: {0}")]
    Locked(String),

    /// A file-system operation failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A bug or an environment failure (no GPU adapter, a backend error).
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The stable machine-readable code of this error, as JS sees it.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadImage { .. } => "BAD_IMAGE",
            Error::BadInput(_) => "BAD_INPUT",
            Error::Corrupt { .. } => "CORRUPT",
            Error::ModelMismatch { .. } => "MODEL_MISMATCH",
            Error::NotFound(_) => "NOT_FOUND",
            Error::AlreadyExists(_) => "ALREADY_EXISTS",
            Error::QuotaExceeded(_) => "QUOTA_EXCEEDED",
            Error::Locked(_) => "LOCKED",
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                "NOT_FOUND"
            }
            Error::Io { .. } => "IO",
            Error::Internal(_) => "INTERNAL",
        }
    }

    /// Whether the caller (user input, user files) is at fault rather than the program.
    /// The CLI exits 2 for these and 1 for the rest.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Error::Internal(_))
    }

    /// Shorthand for a corrupt blob.
    pub fn corrupt(name: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

/// The library's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable() {
        assert_eq!(Error::corrupt("seg-1", "crc").code(), "CORRUPT");
        assert_eq!(
            Error::BadImage {
                name: "a.png".into(),
                reason: "truncated".into()
            }
            .code(),
            "BAD_IMAGE"
        );
        let missing = Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound));
        assert_eq!(missing.code(), "NOT_FOUND");
        assert!(!Error::Internal("bug".into()).is_user_error());
        assert!(Error::BadInput("nan".into()).is_user_error());
    }

    /// One value of every variant; the match makes a new variant a compile
    /// error here until it is listed.
    fn one_of_each() -> Vec<Error> {
        let all = vec![
            Error::BadImage {
                name: "a.png".into(),
                reason: "truncated".into(),
            },
            Error::BadInput("nan".into()),
            Error::corrupt("seg-1", "crc"),
            Error::ModelMismatch {
                what: "gallery".into(),
                expected: "a".into(),
                found: "b".into(),
            },
            Error::NotFound("cat".into()),
            Error::AlreadyExists("cat".into()),
            Error::QuotaExceeded("idb".into()),
            Error::Locked("tab".into()),
            Error::io("x", std::io::Error::from(std::io::ErrorKind::NotFound)),
            Error::io(
                "x",
                std::io::Error::from(std::io::ErrorKind::PermissionDenied),
            ),
            Error::Internal("bug".into()),
        ];
        for e in &all {
            match e {
                Error::BadImage { .. }
                | Error::BadInput(_)
                | Error::Corrupt { .. }
                | Error::ModelMismatch { .. }
                | Error::NotFound(_)
                | Error::AlreadyExists(_)
                | Error::QuotaExceeded(_)
                | Error::Locked(_)
                | Error::Io { .. }
                | Error::Internal(_) => {}
            }
        }
        all
    }

    /// The npm package's `ERROR_CODES` (what JS apps switch on) lists exactly
    /// the codes the library produces.
    #[test]
    fn js_error_codes_are_the_rust_codes() {
        let js = include_str!("../pkg-config/index.js");
        let list = js
            .split("export const ERROR_CODES = Object.freeze([")
            .nth(1)
            .and_then(|rest| rest.split("]);").next())
            .expect("pkg-config/index.js exports ERROR_CODES");
        let js_codes: std::collections::BTreeSet<&str> = list
            .split(',')
            .map(|c| c.trim().trim_matches('\''))
            .filter(|c| !c.is_empty())
            .collect();
        let rust_codes: std::collections::BTreeSet<&str> =
            one_of_each().iter().map(Error::code).collect();
        assert_eq!(js_codes, rust_codes);
    }

    #[test]
    fn messages_name_the_culprit() {
        let e = Error::corrupt("segments/s-000001.seg", "checksum mismatch");
        assert!(e.to_string().contains("segments/s-000001.seg"));
    }
}
