//! Per-token controls: model allow-lists, RPM/RPD sliding windows, and monthly budgets enforced by
//! reservation.
//!
//! One `TokenCell` per agent token (made on first use) holds that token's windows, spend and
//! holds behind its own lock, so "check and hold" is one atomic step on the request's thread: a hard budget can never be
//! overspent however many requests race. Every hold is released or settled by its
//! `ReservationGuard` (in `Drop` if nothing else), and expires as a last resort. Spend survives
//! restarts through the hourly counters the usage writer keeps. Does not price requests
//! (`catalog::Model::cost`) nor write the ledger (`usage/`).

mod allow;
mod budget;
mod cell;
mod handle;
mod hold;
mod lease;
mod period;
mod shared;
mod window;

pub use allow::check_model;
pub use budget::{Admission, LimitError};
pub use handle::{Budgets, ReservationGuard, Shared};
pub use hold::{CandidatePrice, Estimate, Grant};
pub use lease::Leases;
pub use period::BudgetPeriod;
pub use shared::{Scope, Shadow, ShadowSource, SharedWindows};
