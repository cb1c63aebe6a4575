//! callvault's read side: the [`journal`] every reader and writer shares,
//! the read models ([`models`]) as pure folds into sled ([`view`]), and the
//! [`registry`] that keeps them following the log, rebuilds them beside
//! the live ones, and waits for a position so a client reads its own
//! writes.

pub mod journal;
pub mod models;
pub mod projection;
pub mod registry;
pub mod view;

pub use projection::{Envelope, Projection, ProjectionError};
pub use registry::{Projections, RebuildProgress, SlotStatus};

use std::sync::Arc;

use callvault_domain::RetentionPolicy;

/// The read models that hold personal data in clear (and so are rebuilt
/// into fresh storage after a purge).
pub const WITH_PERSONAL_DATA: [&str; 3] = [
    models::calls::NAME,
    models::access_audit::NAME,
    models::subjects::NAME,
];

/// Every read model, as this build of callvault defines them.
pub fn all(policy: RetentionPolicy) -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(models::calls::Calls),
        Arc::new(models::access_audit::AccessAudit),
        Arc::new(models::retention::Retention { policy }),
        Arc::new(models::subjects::Subjects),
        Arc::new(models::staff_rights::StaffRights),
        Arc::new(models::stats::Stats),
    ]
}
