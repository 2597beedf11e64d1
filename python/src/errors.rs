//! Library errors as Python exceptions: one class per stable code (the codes
//! the JS package throws), all under `metricann.Error`, each with `.code`.

use metricann::Error;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    metricann,
    MetricannError,
    PyException,
    "Any MetricANN failure; `.code` is its stable code."
);
create_exception!(
    metricann,
    BadImageError,
    MetricannError,
    "BAD_IMAGE: an image could not be decoded."
);
create_exception!(
    metricann,
    BadInputError,
    MetricannError,
    "BAD_INPUT: a wrong argument, vector or label."
);
create_exception!(
    metricann,
    CorruptError,
    MetricannError,
    "CORRUPT: a stored file failed its checks."
);
create_exception!(
    metricann,
    ModelMismatchError,
    MetricannError,
    "MODEL_MISMATCH: built by another model."
);
create_exception!(
    metricann,
    NotFoundError,
    MetricannError,
    "NOT_FOUND: no such class, file or record."
);
create_exception!(
    metricann,
    AlreadyExistsError,
    MetricannError,
    "ALREADY_EXISTS: the label is taken."
);
create_exception!(
    metricann,
    QuotaExceededError,
    MetricannError,
    "QUOTA_EXCEEDED: the storage is full."
);
create_exception!(
    metricann,
    LockedError,
    MetricannError,
    "LOCKED: another writer holds the gallery."
);
create_exception!(
    metricann,
    IoError,
    MetricannError,
    "IO: a file-system operation failed."
);
create_exception!(
    metricann,
    InternalError,
    MetricannError,
    "INTERNAL: a bug or an environment failure."
);

/// The Python exception for a library error, with its code as `.code`.
pub fn to_py(e: Error) -> PyErr {
    let code = e.code();
    let message = e.to_string();
    let err = match code {
        "BAD_IMAGE" => BadImageError::new_err(message),
        "BAD_INPUT" => BadInputError::new_err(message),
        "CORRUPT" => CorruptError::new_err(message),
        "MODEL_MISMATCH" => ModelMismatchError::new_err(message),
        "NOT_FOUND" => NotFoundError::new_err(message),
        "ALREADY_EXISTS" => AlreadyExistsError::new_err(message),
        "QUOTA_EXCEEDED" => QuotaExceededError::new_err(message),
        "LOCKED" => LockedError::new_err(message),
        "IO" => IoError::new_err(message),
        _ => InternalError::new_err(message),
    };
    Python::attach(|py| {
        // Setting an attribute on a fresh exception object cannot fail short
        // of memory exhaustion; the exception is raised either way.
        let _ = err.value(py).setattr("code", code);
    });
    err
}

/// A `BAD_INPUT` error from the bindings' own argument checks.
pub fn bad_input(message: impl Into<String>) -> PyErr {
    to_py(Error::BadInput(message.into()))
}

/// `?` for library results.
pub trait OrRaise<T> {
    fn or_raise(self) -> PyResult<T>;
}

impl<T> OrRaise<T> for metricann::Result<T> {
    fn or_raise(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<MetricannError>())?;
    m.add("BadImageError", py.get_type::<BadImageError>())?;
    m.add("BadInputError", py.get_type::<BadInputError>())?;
    m.add("CorruptError", py.get_type::<CorruptError>())?;
    m.add("ModelMismatchError", py.get_type::<ModelMismatchError>())?;
    m.add("NotFoundError", py.get_type::<NotFoundError>())?;
    m.add("AlreadyExistsError", py.get_type::<AlreadyExistsError>())?;
    m.add("QuotaExceededError", py.get_type::<QuotaExceededError>())?;
    m.add("LockedError", py.get_type::<LockedError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    m.add("InternalError", py.get_type::<InternalError>())?;
    Ok(())
}
