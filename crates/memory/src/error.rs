//! Errors of the store, each naming what it is about. The HTTP mapping is in `api::error`.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Bad input: the field and why.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("{kind} {id} not found")]
    NotFound { kind: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    /// The database was locked past busy_timeout.
    #[error("database busy ({op}); retry")]
    Busy { op: &'static str },
    #[error("{op}: {source}")]
    Sqlite {
        op: &'static str,
        #[source]
        source: rusqlite::Error,
    },
}

impl StoreError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        StoreError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Wrap a rusqlite error with the operation; lock timeouts become [`StoreError::Busy`].
pub fn sql(op: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |source| match source.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseBusy) | Some(rusqlite::ErrorCode::DatabaseLocked) => {
            StoreError::Busy { op }
        }
        _ => StoreError::Sqlite { op, source },
    }
}
