//! One module per page; each reads the daemons' APIs and renders HTML.

pub mod backups;
pub mod cost;
pub mod family;
pub mod hosts;
pub mod layout;
pub mod memories;
pub mod overview;
pub mod voice;

/// Unix milliseconds as `YYYY-MM-DD HH:MM UTC` (the console has no zone of its own to assume).
pub use barnabee_service::time::utc_minutes as utc;
