//! elsadoctor: diagnoses Elsa Workflows Server on Kubernetes with PostgreSQL.
//!
//! The flow (DESIGN.md §2): [`cli`] → [`settings`] → [`gather`] (the only IO) → [`facts`] →
//! [`runner`] calls the pure [`checks`] in [`catalogue`] order → [`runner::RunEvent`]s → one
//! renderer in [`render`]. [`redact`] is the one place secrets are masked. The simulated
//! cluster that `elsadoctor demo` and the tests run against is its own crate, `elsadoctor-sim`
//! (`sim/`).

pub mod app;
pub mod bundle;
pub mod catalogue;
pub mod checks;
pub mod cli;
pub mod domain;
pub mod facts;
pub mod gather;
pub mod model;
pub mod probe;
pub mod redact;
pub mod render;
pub mod report;
pub mod runner;
pub mod settings;
pub mod tui;
