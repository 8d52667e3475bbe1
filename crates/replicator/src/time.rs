//! Time: barnabee-service's one time module (Unix ms, RFC 3339 both ways, the one duration
//! grammar), re-exported under the name the replicator's modules have always used.

pub use barnabee_service::time::{format_rfc3339, now_ms, parse_duration, parse_rfc3339};
