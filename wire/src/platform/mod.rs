//! The JSON shapes of the platform API (seed 002), spelled as the seed spells them
//! (`envVars`, `deployment_name`, `configData`), and their conversions.

mod deployments;
mod operations;

pub use deployments::*;
pub use operations::*;
