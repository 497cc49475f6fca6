//! Renderers: thin consumers of the run's event stream. Exactly one renders a run.

pub mod json;
pub mod text;
